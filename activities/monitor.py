"""The fleet monitor's agent and housekeeping work: tell machine workflows their agent fell
silent, and prune old metrics."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.service import RPCError

from core.contracts.activities import ActivityName
from core.contracts.monitor import MonitorTick, PruneMetricsResult, SweepResult
from core.metrics.liveness import forget_told_state, sweep_offline
from core.metrics.retention import prune_metrics
from workflows.client import MachineClient, MachineDestroyed, MachineNotFound


class MonitorActivities:
    def __init__(self, engine: Engine, machines: MachineClient) -> None:
        self._engine = engine
        self._machines = machines

    @activity.defn(name=ActivityName.SWEEP_SILENT_AGENTS)
    async def sweep_silent_agents(self, input: MonitorTick) -> SweepResult:
        """Machines whose agent has not reported for three intervals (1.5 with a standby:
        core/metrics/liveness.py) go offline, each exactly once (the database arbitrates),
        and their workflow hears it."""
        transitions = await asyncio.to_thread(sweep_offline, self._engine, input.now)
        signalled = 0
        for transition in transitions:
            try:
                await self._machines.report_agent(transition.machine_id, transition.report)
            except (MachineNotFound, MachineDestroyed):
                continue  # the machine's workflow has ended: nobody to tell
            except RPCError as exc:
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
