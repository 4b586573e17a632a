"""A schedule's trigger, fired through Temporal (`ScheduleHandle.trigger()`), reaches the
machine workflow: the trigger workflow runs the activity, which sends the update and reports
what the machine answered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.schedule_trigger import ScheduleTriggerActivities
from core.contracts import machine_workflow_id
from core.contracts.hibernation import WakeInput
from core.contracts.machine import LifecyclePolicy
from core.contracts.schedules import (
    ScheduleKind,
    ScheduleMode,
    ScheduleTriggerResult,
    schedule_id,
)
from core.contracts.standby import MigrateInput, Side, StandbyConfig
from core.contracts.states import MachineState
from core.contracts.workflow import MachineInput
from core.schedules import delete_machine_schedules, get_machine_schedule, set_machine_schedule
from tests.workflows.failover_cloud import FailoverCloud
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import SPEC, MachineHandle, start_machine
from workflows.client import MachineClient
from workflows.machine import MachineWorkflow
from workflows.schedule_trigger import ScheduleTriggerWorkflow

POLICY = LifecyclePolicy(
    boot_timeout_seconds=600, provision_attempts=3, boot_poll_seconds=1, heartbeat_timeout_seconds=2
)


@asynccontextmanager
async def trigger_worker(client: Client, cloud: FakeCloud) -> AsyncIterator[str]:
    """Machine workflows on fake activities, plus the real trigger workflow and activity."""
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[MachineWorkflow, ScheduleTriggerWorkflow],
        activities=[
            *cloud.activities(),
            ScheduleTriggerActivities(MachineClient(client)).send_scheduled_action,
        ],
    ):
        yield task_queue


async def schedule(
    client: Client, machine_id: str, task_queue: str, mode: ScheduleMode = ScheduleMode.HIBERNATE
) -> None:
    """Wake 09:00 and sleep 18:00, from next year on: only `trigger()` fires them here."""
    await set_machine_schedule(
        client,
        machine_id,
        task_queue=task_queue,
        wake_time="09:00",
        sleep_time="18:00",
        timezone="America/Sao_Paulo",
        mode=mode,
        start_at=datetime.now(UTC) + timedelta(days=365),
    )


async def fire(client: Client, machine_id: str, kind: ScheduleKind) -> ScheduleTriggerResult:
    """Trigger the schedule now and wait for its trigger workflow's result."""
    handle = client.get_schedule_handle(schedule_id(machine_id, kind))
    before = len((await handle.describe()).info.recent_actions)
    await handle.trigger()
    for _ in range(400):
        description = await handle.describe()
        if len(description.info.recent_actions) > before:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"{handle.id} started nothing")
    action = description.info.recent_actions[-1].action
    assert isinstance(action, ScheduleActionExecutionStartWorkflow)
    assert action.workflow_id.startswith(f"{schedule_id(machine_id, kind)}-")
    trigger = client.get_workflow_handle(action.workflow_id, result_type=ScheduleTriggerResult)
    return await asyncio.wait_for(trigger.result(), timeout=120)


async def until(handle: MachineHandle, state: MachineState) -> None:
    for _ in range(600):
        snapshot = await handle.query(MachineWorkflow.state)
        if snapshot.state is state and not snapshot.outbox:  # and its events written
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"machine is {snapshot.state}, never became {state}")


async def test_wake_on_a_running_machine_is_skipped_with_the_machines_reason(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    cloud = FakeCloud(POLICY)
    async with trigger_worker(client, cloud) as task_queue:
        machine = await start_machine(client, task_queue)
        machine_id = machine.id.removeprefix("machine-")
        await until(machine, MachineState.RUNNING)
        with pytest.raises(WorkflowUpdateFailedError) as direct:
            await machine.execute_update(MachineWorkflow.wake, WakeInput())
        assert isinstance(direct.value.cause, ApplicationError)
        await schedule(client, machine_id, task_queue)
        try:
            result = await fire(client, machine_id, ScheduleKind.WAKE)
        finally:
            await delete_machine_schedules(client, machine_id)
        snapshot = await machine.query(MachineWorkflow.state)

    # The machine's own validator answered, and the trigger passed its reason on.
    assert result == ScheduleTriggerResult(
        machine_id=machine_id,
        kind=ScheduleKind.WAKE,
        skipped=True,
        outcome=f"skipped: {direct.value.cause.message}",
    )
    assert snapshot.state is MachineState.RUNNING and len(cloud.live()) == 1


async def test_a_machine_without_a_workflow_is_skipped(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    machine_id = f"gone{uuid.uuid4().hex[:8]}"
    async with trigger_worker(client, FakeCloud(POLICY)) as task_queue:
        await schedule(client, machine_id, task_queue)
        try:
            result = await fire(client, machine_id, ScheduleKind.SLEEP)
        finally:
            await delete_machine_schedules(client, machine_id)

    assert result == ScheduleTriggerResult(
        machine_id=machine_id,
        kind=ScheduleKind.SLEEP,
        skipped=True,
        outcome=f"skipped: machine {machine_id} not found",
    )


async def test_sleep_then_wake_then_sleep_again(dev_env: WorkflowEnvironment) -> None:
    """The daily cycle: sleep hibernates the running machine, wake brings it back on a new
    instance, and a sleep while already hibernated is a skip, not a failure."""
    client = dev_env.client
    cloud = FakeCloud(POLICY)
    async with trigger_worker(client, cloud) as task_queue:
        machine = await start_machine(client, task_queue)
        machine_id = machine.id.removeprefix("machine-")
        await until(machine, MachineState.RUNNING)
        (first,) = cloud.live()
        await schedule(client, machine_id, task_queue)
        try:
            slept = await fire(client, machine_id, ScheduleKind.SLEEP)
            hibernated = await machine.query(MachineWorkflow.state)
            live_while_asleep = cloud.live()
            woken = await fire(client, machine_id, ScheduleKind.WAKE)
            awake = await machine.query(MachineWorkflow.state)
            await fire(client, machine_id, ScheduleKind.SLEEP)
            again = await fire(client, machine_id, ScheduleKind.SLEEP)
        finally:
            await delete_machine_schedules(client, machine_id)

    assert slept == ScheduleTriggerResult(
        machine_id=machine_id, kind=ScheduleKind.SLEEP, skipped=False, outcome="hibernated"
    )
    assert hibernated.state is MachineState.HIBERNATED and live_while_asleep == []
    assert woken == ScheduleTriggerResult(
        machine_id=machine_id, kind=ScheduleKind.WAKE, skipped=False, outcome="running"
    )
    assert awake.state is MachineState.RUNNING
    assert awake.instance is not None and awake.instance.instance_id != first.instance_id
    assert again == ScheduleTriggerResult(
        machine_id=machine_id,
        kind=ScheduleKind.SLEEP,
        skipped=True,
        outcome="skipped: machine is already hibernated",
    )
    # The schedule's reason is on the machine's events.
    reasons = [e.reason for e in cloud.events if e.event_type in ("hibernating", "waking")]
    assert "scheduled sleep at 18:00 America/Sao_Paulo" in reasons
    assert "scheduled wake at 09:00 America/Sao_Paulo" in reasons


async def test_a_schedule_in_pause_mode_pauses_and_resumes_on_the_same_instance(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    cloud = FakeCloud(POLICY)
    async with trigger_worker(client, cloud) as task_queue:
        machine = await start_machine(client, task_queue)
        machine_id = machine.id.removeprefix("machine-")
        await until(machine, MachineState.RUNNING)
        (first,) = cloud.live()
        await schedule(client, machine_id, task_queue, ScheduleMode.PAUSE)
        try:
            described = await get_machine_schedule(client, machine_id)
            slept = await fire(client, machine_id, ScheduleKind.SLEEP)
            paused = await machine.query(MachineWorkflow.state)
            woken = await fire(client, machine_id, ScheduleKind.WAKE)
            awake = await machine.query(MachineWorkflow.state)
        finally:
            await delete_machine_schedules(client, machine_id)

    assert described is not None and described.mode is ScheduleMode.PAUSE
    assert slept.outcome == "paused" and paused.state is MachineState.PAUSED
    assert woken.outcome == "running" and awake.state is MachineState.RUNNING
    assert awake.instance is not None and awake.instance.instance_id == first.instance_id
    reasons = [e.reason or "" for e in cloud.events if e.event_type in ("pausing", "resuming")]
    assert "scheduled pause at 18:00 America/Sao_Paulo" in reasons
    assert "scheduled resume at 09:00 America/Sao_Paulo" in reasons


async def test_a_wake_schedule_brings_a_machine_on_its_standby_back_to_a_gpu(
    dev_env: WorkflowEnvironment,
) -> None:
    """After an idle migration (or `migrate to cpu`) the machine waits on its standby: the
    day's wake moves it back onto a GPU."""
    client = dev_env.client
    cloud = FailoverCloud(POLICY)
    async with trigger_worker(client, cloud) as task_queue:
        machine_id = f"m{uuid.uuid4().hex[:10]}"
        machine = await client.start_workflow(
            MachineWorkflow.run,
            MachineInput(
                machine_id=machine_id,
                owner_id="u_test",
                spec=SPEC,
                standby=StandbyConfig(enabled=True),
            ),
            id=machine_workflow_id(machine_id),
            task_queue=task_queue,
        )
        for _ in range(600):
            state = await machine.query(MachineWorkflow.state)
            if state.instance and state.standby.linked_instance_id == state.instance.instance_id:
                break
            await asyncio.sleep(0.05)
        await machine.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.CPU))
        await schedule(client, machine_id, task_queue)
        try:
            result = await fire(client, machine_id, ScheduleKind.WAKE)
        finally:
            await delete_machine_schedules(client, machine_id)
        snapshot = await machine.query(MachineWorkflow.state)
    assert result.skipped is False and "back from its standby" in result.outcome
    assert snapshot.state is MachineState.RUNNING and snapshot.standby.side is Side.GPU
    assert len(cloud.gpus()) == 1 and len(cloud.standbys()) == 1
