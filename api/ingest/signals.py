"""Delivery of `agent_report` and `standby_sync` transitions to machine workflows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.service import RPCError, RPCStatusCode

from api.temporal import TemporalConnector
from core.contracts import machine_workflow_id
from core.metrics.liveness import Transition
from core.metrics.standby_sync import STANDBY_SYNC_SIGNAL, SyncTransition
from workflows.client import MachineClient, MachineDestroyed, MachineNotFound

Signaller = Callable[[Transition], Awaitable[None]]
SyncSignaller = Callable[[SyncTransition], Awaitable[None]]


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

    async def sync(self, transition: SyncTransition) -> None:
        """The standby sync turned healthy or failing."""
        client = await self._connector.client()
        handle = client.get_workflow_handle(machine_workflow_id(transition.machine_id))
        try:
            await handle.signal(STANDBY_SYNC_SIGNAL, transition.report)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise  # NOT_FOUND: an ended (or never started) machine has nobody to tell
