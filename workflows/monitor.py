"""FleetMonitorWorkflow: one long-lived workflow (id `fleet-monitor`) that, every interval,
tells machine workflows their agent fell silent, evaluates alert rules and posts webhooks;
every `prune_interval_seconds`, prunes old metrics and expired snapshots (then the packs no
snapshot references); and every `reconcile_interval_seconds`, reconciles every provider's
instances with the machines (orphans: activities/reconcile.py).

Its deadlines are absolute times in `MonitorState`, carried across continue-as-new. A round
that fails (the database is down) is logged and the next round comes at its time: the monitor
itself never fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import ActivityName
    from core.contracts.monitor import (
        DeliverWebhooksResult,
        EvaluateAlertsResult,
        MonitorInput,
        MonitorState,
        MonitorTick,
        PruneMetricsResult,
        ReconcileResult,
        SweepResult,
    )
    from core.contracts.snapshots import CollectGarbageRequest, CollectGarbageResult

# The fleet reconciler (orphan instances) as a step of the monitor's rounds.
RECONCILE_PATCH = "reconcile-instances"

# A round's work is worth a few quick tries; the next round does the rest.
_ROUND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)


@workflow.defn
class FleetMonitorWorkflow:
    @workflow.init
    def __init__(self, input: MonitorInput) -> None:
        self._state = input.carried or MonitorState()

    @workflow.query
    def state(self) -> MonitorState:
        return self._state

    @workflow.run
    async def run(self, input: MonitorInput) -> None:
        s = self._state
        interval = timedelta(seconds=input.interval_seconds)
        while True:
            now = workflow.now()
            if s.next_tick_at is not None and now < s.next_tick_at:
                await workflow.sleep(s.next_tick_at - now)
                continue
            await self._round(now, prune=s.next_prune_at is None or now >= s.next_prune_at)
            if s.next_prune_at is None or now >= s.next_prune_at:
                s.next_prune_at = now + timedelta(seconds=input.prune_interval_seconds)
            # Runs recorded before the reconciler replay without it.
            if workflow.patched(RECONCILE_PATCH) and (
                s.next_reconcile_at is None or now >= s.next_reconcile_at
            ):
                await self._step(
                    ActivityName.RECONCILE_INSTANCES,
                    MonitorTick(now=now),
                    ReconcileResult,
                    timedelta(minutes=10),
                )
                s.next_reconcile_at = now + timedelta(seconds=input.reconcile_interval_seconds)
            s.ticks += 1
            # Rounds keep their rhythm; after an overrun (or a stop of the workers) the next
            # is a full interval away, never a burst of rounds catching up.
            due = (s.next_tick_at or now) + interval
            s.next_tick_at = due if due > workflow.now() else workflow.now() + interval
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    MonitorInput(
                        interval_seconds=input.interval_seconds,
                        prune_interval_seconds=input.prune_interval_seconds,
                        reconcile_interval_seconds=input.reconcile_interval_seconds,
                        carried=s,
                    )
                )

    async def _round(self, now: datetime, *, prune: bool) -> None:
        tick = MonitorTick(now=now)
        # Silences first: an agent going offline is evaluated in this same round.
        await self._step(ActivityName.SWEEP_SILENT_AGENTS, tick, SweepResult)
        await self._step(ActivityName.EVALUATE_ALERTS, tick, EvaluateAlertsResult)
        await self._step(ActivityName.DELIVER_WEBHOOKS, tick, DeliverWebhooksResult)
        if prune:
            await self._step(ActivityName.PRUNE_METRICS, tick, PruneMetricsResult)
            # Snapshots past retention, then packs no snapshot references.
            await self._step(
                ActivityName.COLLECT_SNAPSHOT_GARBAGE,
                CollectGarbageRequest(),
                CollectGarbageResult,
                timedelta(minutes=30),
            )

    async def _step(
        self,
        name: ActivityName,
        input: MonitorTick | CollectGarbageRequest,
        result_type: type[Any],
        limit: timedelta = timedelta(minutes=2),
    ) -> None:
        try:
            await workflow.execute_activity(
                name,
                input,
                result_type=result_type,
                start_to_close_timeout=limit,
                retry_policy=_ROUND_RETRY,
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise  # the monitor itself is being cancelled
            workflow.logger.warning("monitor step %s failed: %s", name, err.cause or err)
