"""Delivery of `agent_report` transitions to machine workflows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from api.temporal import TemporalConnector
from core.metrics.liveness import Transition
from workflows.client import MachineClient, MachineDestroyed, MachineNotFound

Signaller = Callable[[Transition], Awaitable[None]]


class TemporalSignaller:
    """Tells a machine's workflow what its agent saw."""

    def __init__(self, connector: TemporalConnector) -> None:
        self._connector = connector

    async def __call__(self, transition: Transition) -> None:
        machines = MachineClient(await self._connector.client())
        try:
            await machines.report_agent(transition.machine_id, transition.report)
        except (MachineNotFound, MachineDestroyed):
            pass  # an ended machine has nobody to tell
