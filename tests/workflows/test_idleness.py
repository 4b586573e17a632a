"""Idleness on the time-skipping server: a machine idle for `pause_after_minutes` is
hibernated on time and `deleted` after `delete_after_minutes`, never while its GPU is busy,
while someone types, or while nothing can be read; and a failed hibernate never destroys."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from core.contracts.agent import AgentReport
from core.contracts.errors import ErrorType
from core.contracts.hibernation import ConfigureInput, HibernateInput, WakeInput
from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import (
    MachineHandle,
    fake_worker,
    signals_processed,
    start_machine,
    workflow_tasks,
    written,
)
from workflows.machine import MachineWorkflow

S = MachineState
# The defaults: 2 min grace after boot, hibernate after 3 idle minutes, deleted after 30.
POLICY = LifecyclePolicy(
    boot_poll_seconds=1,
    heartbeat_timeout_seconds=2,
    snapshot_attempts=2,
    snapshot_retry_seconds=1,
    wake_offer_attempts=2,
    wake_offer_retry_seconds=1,
)
ON_TIME = timedelta(seconds=5)


async def until(handle: MachineHandle, state: MachineState) -> MachineSnapshot:
    for _ in range(300):
        snapshot = await handle.query(MachineWorkflow.state)
        if snapshot.state is state and not snapshot.outbox:  # and its events written
            return snapshot
        await handle.query(MachineWorkflow.state)
    raise AssertionError(f"machine is {snapshot.state}, never {state}")


async def tell(handle: MachineHandle, env: WorkflowEnvironment, **report: Any) -> datetime:
    """Send an agent report stamped with the server's time; returns that time."""
    at = await env.get_current_time()
    await handle.signal(MachineWorkflow.agent_report, AgentReport(online=True, at=at, **report))
    await signals_processed(handle)
    return at


IDLE = {"gpu_busy": False, "busy": False, "gpu_utilization": 1.0}
GPU_BUSY = {"gpu_busy": True, "busy": True, "gpu_utilization": 85.0}


async def state_after(
    env: WorkflowEnvironment, handle: MachineHandle, skipped: timedelta
) -> MachineSnapshot:
    await env.sleep(skipped)
    return await written(handle)


async def test_idle_machine_hibernates_then_is_deleted_on_time(ts_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        up = await until(handle, S.RUNNING)
        (instance,) = cloud.live()
        instance.workspace = {"train.py": "print('hi')"}
        idle_at = await tell(handle, ts_env, **IDLE)

        snapshot = await handle.query(MachineWorkflow.state)
        h = snapshot.hibernation
        assert h.idle_since == idle_at
        # Setup time is not idle time: counting starts after the grace period.
        assert h.grace_until is not None and up.state_since is not None
        assert h.grace_until - up.state_since == timedelta(seconds=120)
        assert h.hibernate_at == max(h.grace_until, idle_at) + timedelta(minutes=3)

        assert (await state_after(ts_env, handle, timedelta(minutes=4))).state is S.IDLE
        hibernated = await state_after(ts_env, handle, timedelta(minutes=2))
        assert hibernated.state is S.HIBERNATED
        assert hibernated.hibernation.hibernated_at is not None
        assert h.hibernate_at <= hibernated.hibernation.hibernated_at <= h.hibernate_at + ON_TIME
        assert cloud.live() == [] and len(cloud.snapshots) == 1
        assert hibernated.hibernation.delete_at == hibernated.hibernation.hibernated_at + timedelta(
            minutes=30
        )

        deleted = await state_after(ts_env, handle, timedelta(minutes=31))
        assert deleted.state is S.DELETED and deleted.state_since is not None
        delete_at = hibernated.hibernation.delete_at
        assert delete_at <= deleted.state_since <= delete_at + ON_TIME
        assert deleted.hibernation.snapshot_id == hibernated.hibernation.snapshot_id
        kinds = [e.event_type for e in cloud.events]
        order = ["idle_detected", "hibernating", "hibernated", "deleted"]
        assert [kind for kind in kinds if kind in order] == order

        # Woken from `deleted`: a new instance with the workspace back.
        woke = await handle.execute_update(MachineWorkflow.wake, WakeInput())
        assert woke.state is S.RUNNING
        (new_instance,) = cloud.live()
        assert new_instance.instance_id != instance.instance_id
        assert new_instance.workspace == {"train.py": "print('hi')"}
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_an_idle_machine_waits_for_its_deadline_without_waking(
    ts_env: WorkflowEnvironment,
) -> None:
    """Between deadlines an idle machine's workflow sleeps: an idle fleet puts no load on
    Temporal and grows no history (it once woke every second for as long as it was idle)."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(pause_after_minutes=60)
        )
        await tell(handle, ts_env, **IDLE)
        assert (await state_after(ts_env, handle, timedelta(minutes=5))).state is S.IDLE
        tasks_when_idle = await workflow_tasks(handle)
        assert (await state_after(ts_env, handle, timedelta(minutes=50))).state is S.IDLE
        assert await workflow_tasks(handle) == tasks_when_idle
        # The deadline it slept towards still wakes it.
        assert (await state_after(ts_env, handle, timedelta(minutes=10))).state is S.HIBERNATED
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(GPU_BUSY, id="gpu-above-threshold"),
        pytest.param({"gpu_busy": None, "busy": None}, id="gpu-unreadable"),
        pytest.param({"gpu_busy": None, "busy": True}, id="gpu-unreadable-judged-by-api"),
    ],
)
async def test_no_hibernation_while_busy_or_unknown(
    ts_env: WorkflowEnvironment, report: dict[str, object]
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await tell(handle, ts_env, **report)
        later = await state_after(ts_env, handle, timedelta(minutes=45))
        assert later.state is S.RUNNING
        assert cloud.snapshots == {} and len(cloud.live()) == 1
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_an_agent_gone_silent_never_counts_as_idle(ts_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await tell(handle, ts_env, **IDLE)
        at = await ts_env.get_current_time()
        await handle.signal(
            MachineWorkflow.agent_report, AgentReport(online=False, at=at + timedelta(seconds=1))
        )
        await signals_processed(handle)
        later = await state_after(ts_env, handle, timedelta(minutes=45))
        assert later.state is S.RUNNING and cloud.snapshots == {}
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_ssh_input_resets_the_idle_clock(ts_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await tell(handle, ts_env, **IDLE)
        assert (await state_after(ts_env, handle, timedelta(minutes=4))).state is S.IDLE
        # Someone types in an SSH session: the GPU is still idle, the machine is not.
        typed_at = await ts_env.get_current_time()
        await tell(handle, ts_env, gpu_busy=False, busy=True, last_input_at=typed_at)
        assert (await handle.query(MachineWorkflow.state)).state is S.RUNNING
        idle_again = await tell(handle, ts_env, **IDLE)
        before = await state_after(ts_env, handle, timedelta(minutes=2, seconds=30))
        assert before.state is S.IDLE and cloud.snapshots == {}
        after = await state_after(ts_env, handle, timedelta(minutes=1))
        assert after.state is S.HIBERNATED
        assert after.hibernation.hibernated_at is not None
        assert after.hibernation.hibernated_at - idle_again >= timedelta(minutes=3)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_a_failed_snapshot_destroys_nothing_and_is_retried_later(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY, snapshot_error="object store http://r2: connection refused")
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await tell(handle, ts_env, **IDLE)
        failed = await state_after(ts_env, handle, timedelta(minutes=6))
        assert failed.state is S.IDLE and len(cloud.live()) == 1
        assert failed.reason is not None and "connection refused" in failed.reason
        kinds = [e.event_type for e in cloud.events]
        assert "snapshot_failed" in kinds and "hibernate_failed" in kinds
        assert "hibernated" not in kinds
        # The store is back: the next try (10 minutes later) succeeds.
        cloud.snapshot_error = None
        retried = await state_after(ts_env, handle, timedelta(minutes=11))
        assert retried.state is S.HIBERNATED and cloud.live() == []
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_pre_hibernate_hook_failure_aborts_or_continues_per_config(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY, hook_exit_status=3)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await handle.execute_update(
            MachineWorkflow.configure,
            ConfigureInput(pre_hibernate_command="python save_checkpoint.py"),
        )
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        assert "pre-hibernate command failed" in str(failed.value.cause)
        snapshot = await handle.query(MachineWorkflow.state)
        assert snapshot.state is S.RUNNING and cloud.snapshots == {} and len(cloud.live()) == 1

        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(pre_hibernate_on_failure="continue")
        )
        done = await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        assert done.state is S.HIBERNATED and done.instance_destroyed
        assert cloud.hooks_run == ["python save_checkpoint.py"] * 2
        kinds = [e.event_type for e in cloud.events]
        assert kinds.count("pre_hibernate_failed") == 2
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_configure_validates_and_moves_the_deadline(ts_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(
                MachineWorkflow.configure, ConfigureInput(gpu_usage_threshold=150)
            )
        cause = rejected.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == ErrorType.INVALID_INPUT
        assert (await handle.query(MachineWorkflow.state)).config.gpu_usage_threshold == 5.0

        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(pause_after_minutes=60)
        )
        await tell(handle, ts_env, **IDLE)
        assert (await state_after(ts_env, handle, timedelta(minutes=10))).state is S.IDLE
        # A shorter pause on a machine already idle for 8 minutes: it hibernates at once.
        result = await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(pause_after_minutes=5)
        )
        assert result.config.pause_after_minutes == 5
        assert cloud.configs[-1].config.pause_after_minutes == 5
        assert (await state_after(ts_env, handle, timedelta(seconds=30))).state is S.HIBERNATED

        # Turned off: an idle machine stays up.
        await handle.execute_update(MachineWorkflow.wake, WakeInput())
        await handle.execute_update(MachineWorkflow.configure, ConfigureInput(enabled=False))
        await tell(handle, ts_env, **IDLE)
        assert (await state_after(ts_env, handle, timedelta(minutes=15))).state is S.IDLE
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_wake_with_no_offer_stays_hibernated_and_says_why(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        cloud.offers = []
        calls_before = len(cloud.calls)
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(MachineWorkflow.wake, WakeInput(region="EU"))
        assert "no offer matches" in str(failed.value.cause)
        snapshot = await handle.query(MachineWorkflow.state)
        assert snapshot.state is S.HIBERNATED and snapshot.hibernation.snapshot_id is not None
        # Searched the region, then anywhere, and again after a pause.
        provisions = [c for c in cloud.calls[calls_before:] if c.startswith("provision")]
        assert len(provisions) == 2 * POLICY.wake_offer_attempts
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        assert "already hibernated" in str(rejected.value.cause)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
