"""Pause and resume's edges on fake activities (the dev server): a resume that finds neither its
host nor a new offer stays paused on its stopped instance, stopped again; one whose instance is
gone as well is hibernated (its snapshot is committed); a destroy in the middle of a move to a
new host (or of a wake) leaves nothing behind; a failed pause hook keeps the machine running."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from core.contracts.hibernation import ConfigureInput, HibernateInput, WakeInput
from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.states import InstanceStatus, MachineState
from core.contracts.workflow import MachineSnapshot
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import MachineHandle, fake_worker, start_machine
from workflows.machine import MachineWorkflow

S = MachineState
POLICY = LifecyclePolicy(
    boot_timeout_seconds=600,
    boot_poll_seconds=1,
    heartbeat_timeout_seconds=2,
    wake_offer_attempts=1,
    wake_offer_retry_seconds=1,
)


async def until(handle: MachineHandle, state: MachineState) -> MachineSnapshot:
    for _ in range(500):
        snapshot = await handle.query(MachineWorkflow.state)
        if snapshot.state is state and not snapshot.outbox:
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError(f"machine is {snapshot.state}, never became {state}")


async def paused_with_host_taken(
    env: WorkflowEnvironment, cloud: FakeCloud, task_queue: str
) -> tuple[MachineHandle, str]:
    """A machine running, then paused, its host taken: the handle and the stopped instance."""
    handle = await start_machine(env.client, task_queue)
    await until(handle, S.RUNNING)
    await handle.execute_update(MachineWorkflow.pause, ActionInput())
    [stopped] = cloud.live()
    cloud.hosts_taken.add(stopped.instance_id)
    return handle, stopped.instance_id


async def test_no_host_and_no_offer_stays_paused_on_the_stopped_instance(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle, old = await paused_with_host_taken(dev_env, cloud, task_queue)
        cloud.offers = []  # nothing else on the market
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(MachineWorkflow.resume, ActionInput())
        state = await until(handle, S.PAUSED)
    assert "on its host" in str(failed.value.cause) and "on a new host" in str(failed.value.cause)
    assert state.instance is not None and state.instance.instance_id == old
    assert state.pause.paused_at is not None and state.pause.left_behind is None
    assert [i.instance_id for i in cloud.live()] == [old]
    # Stopped again: a start still waiting for the host's GPUs must not land and bill.
    assert cloud.instances[old].status is InstanceStatus.STOPPED
    assert cloud.calls[-1] == f"stop {old}"
    kinds = [e.event_type for e in cloud.events]
    assert kinds[-1] == "resume_failed"


async def test_an_instance_gone_with_no_offer_leaves_the_machine_hibernated(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle, old = await paused_with_host_taken(dev_env, cloud, task_queue)
        cloud.offers = []
        cloud.instances[old].status = InstanceStatus.GONE  # the provider lost it meanwhile
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(MachineWorkflow.resume, ActionInput())
        state = await until(handle, S.HIBERNATED)
        assert state.instance is None and state.hibernation.needs_restore
        # Its next resume wakes it, once an offer is back.
        cloud.offers.append("offer-2")
        resumed = await handle.execute_update(MachineWorkflow.resume, ActionInput())
    assert resumed.state is S.RUNNING and resumed.instance_id != old


async def test_a_destroy_while_moving_to_a_new_host_leaves_nothing(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY, boot_seconds=lambda attempt: 3600 if attempt > 1 else 0)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle, _ = await paused_with_host_taken(dev_env, cloud, task_queue)
        await handle.start_update(
            MachineWorkflow.resume, ActionInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        for _ in range(500):  # the new instance is rented, still booting
            if len(cloud.live()) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(cloud.live()) == 2
        # At once: a cancel that reaches the boot's wait as it completes must not be lost.
        async with asyncio.timeout(30):
            destroyed = await handle.execute_update(MachineWorkflow.destroy, ActionInput())
    assert destroyed.state is S.DESTROYED
    assert cloud.live() == []


async def test_a_destroy_the_moment_a_wake_rented_ends_the_wake(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY, boot_seconds=lambda attempt: 3600 if attempt > 1 else 0)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        await handle.start_update(
            MachineWorkflow.wake, WakeInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        for _ in range(500):
            if cloud.live():
                break
            await asyncio.sleep(0.02)
        async with asyncio.timeout(30):
            destroyed = await handle.execute_update(MachineWorkflow.destroy, ActionInput())
    assert destroyed.state is S.DESTROYED and cloud.live() == []


async def test_a_failed_pause_hook_keeps_the_machine_running(dev_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY, hook_exit_status=2)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(pre_hibernate_command="python save.py")
        )
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(MachineWorkflow.pause, ActionInput())
        state = await until(handle, S.RUNNING)
    assert "pre-hibernate command failed" in str(failed.value.cause)
    assert state.instance is not None and cloud.instances[state.instance.instance_id].status is (
        InstanceStatus.RUNNING
    )
    assert "snapshot" not in " ".join(cloud.calls)
