"""The recorder's scenarios of the workflows other than the machine's: the fleet monitor and a
schedule's trigger, each on activities of its own (record.py runs them)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.contracts.monitor import (
    DeliverWebhooksResult,
    EvaluateAlertsResult,
    MonitorInput,
    MonitorTick,
    PruneMetricsResult,
    ReconcileResult,
    SweepResult,
)
from core.contracts.schedules import (
    SEND_SCHEDULED_ACTION,
    ScheduleKind,
    ScheduleTriggerInput,
    ScheduleTriggerResult,
)
from core.contracts.snapshots import CollectGarbageRequest, CollectGarbageResult
from workflows.monitor import FleetMonitorWorkflow
from workflows.schedule_trigger import ScheduleTriggerWorkflow


async def fleet_monitor(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """Three monitor rounds, the first with a prune (and, since `reconcile-instances`, a
    reconcile); one activity fails and is logged."""

    @activity.defn(name="sweep_silent_agents")
    async def sweep(tick: MonitorTick) -> SweepResult:
        return SweepResult(offline=1, signalled=1)

    @activity.defn(name="evaluate_alerts")
    async def evaluate(tick: MonitorTick) -> EvaluateAlertsResult:
        raise RuntimeError("database is down")

    @activity.defn(name="deliver_webhooks")
    async def deliver(tick: MonitorTick) -> DeliverWebhooksResult:
        return DeliverWebhooksResult(delivered=2)

    @activity.defn(name="prune_metrics")
    async def prune(tick: MonitorTick) -> PruneMetricsResult:
        return PruneMetricsResult(deleted=10)

    @activity.defn(name="collect_snapshot_garbage")
    async def collect(request: CollectGarbageRequest) -> CollectGarbageResult:
        return CollectGarbageResult(
            expired_snapshots=1, deleted_packs=2, deleted_bytes=3, aborted_uploads=0
        )

    @activity.defn(name="reconcile_instances")
    async def reconcile(tick: MonitorTick) -> ReconcileResult:
        return ReconcileResult(listed=3, orphans=1, new_orphans=1, destroyed=0)

    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[FleetMonitorWorkflow],
        activities=[sweep, evaluate, deliver, prune, collect, reconcile],
    ):
        handle = await env.client.start_workflow(
            FleetMonitorWorkflow.run,
            MonitorInput(interval_seconds=30),
            id=f"fleet-monitor-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
        )
        while (await handle.query(FleetMonitorWorkflow.state)).ticks < 3:
            await env.sleep(timedelta(seconds=30))
        await handle.terminate("recorded")
        history = await handle.fetch_history()
        return [(handle.id, history.to_json())]


async def schedule_trigger(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """A wake schedule's trigger: one activity sends the update and reports the outcome."""

    @activity.defn(name=SEND_SCHEDULED_ACTION)
    async def send(input: ScheduleTriggerInput) -> ScheduleTriggerResult:
        return ScheduleTriggerResult(
            machine_id=input.machine_id, kind=input.kind, skipped=False, outcome="running"
        )

    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[ScheduleTriggerWorkflow], activities=[send]
    ):
        handle = await env.client.start_workflow(
            ScheduleTriggerWorkflow.run,
            ScheduleTriggerInput(
                machine_id="m1", kind=ScheduleKind.WAKE, reason="scheduled wake at 08:00 UTC"
            ),
            id=f"machine-m1-wake-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
        )
        await handle.result()
        return [(handle.id, (await handle.fetch_history()).to_json())]
