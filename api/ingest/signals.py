"""Delivery of `agent_report` transitions to machine workflows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.service import RPCError, RPCStatusCode

from api.temporal import TemporalConnector
from core.contracts import machine_workflow_id
from core.metrics.liveness import Transition

AGENT_REPORT_SIGNAL = "agent_report"

Signaller = Callable[[Transition], Awaitable[None]]


class TemporalSignaller:
    """Signals by name, so the API needs no workflow class to tell a machine what its agent saw."""

    def __init__(self, connector: TemporalConnector) -> None:
        self._connector = connector

    async def __call__(self, transition: Transition) -> None:
        client = await self._connector.client()
        handle = client.get_workflow_handle(machine_workflow_id(transition.machine_id))
        try:
            await handle.signal(AGENT_REPORT_SIGNAL, transition.report)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # an ended machine has nobody to tell
                raise
