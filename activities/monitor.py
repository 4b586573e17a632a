"""The fleet monitor's agent and housekeeping work: tell machine workflows their agent fell
silent, and prune old metrics."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import machine_workflow_id
from core.contracts.activities import ActivityName
from core.contracts.monitor import MonitorTick, PruneMetricsResult, SweepResult
from core.metrics.liveness import forget_told_state, sweep_offline
from core.metrics.retention import prune_metrics
from workflows.machine import MachineWorkflow


class MonitorActivities:
    def __init__(self, engine: Engine, client: Client) -> None:
        self._engine = engine
        self._client = client

    @activity.defn(name=ActivityName.SWEEP_SILENT_AGENTS)
    async def sweep_silent_agents(self, input: MonitorTick) -> SweepResult:
        """Machines whose agent has not reported for three intervals go offline (each exactly
        once: the database arbitrates) and their workflow hears it."""
        transitions = await asyncio.to_thread(sweep_offline, self._engine, input.now)
        signalled = 0
        for transition in transitions:
            handle = self._client.get_workflow_handle_for(
                MachineWorkflow.run, machine_workflow_id(transition.machine_id)
            )
            try:
                await handle.signal(MachineWorkflow.agent_report, transition.report)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    continue  # the machine's workflow has ended: nobody to tell
                activity.logger.warning(
                    "could not tell %s its agent is offline (%s); the next sweep will",
                    transition.machine_id,
                    exc.message,
                )
                await asyncio.to_thread(forget_told_state, self._engine, transition)
                continue
            signalled += 1
        return SweepResult(offline=len(transitions), signalled=signalled)

    @activity.defn(name=ActivityName.PRUNE_METRICS)
    def prune_metrics(self, input: MonitorTick) -> PruneMetricsResult:
        result = prune_metrics(self._engine, input.now)
        return PruneMetricsResult(
            deleted=result.raw_samples + result.minute_rollups + result.hour_rollups
        )
