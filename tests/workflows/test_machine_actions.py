"""Updates, validators, queries, search attributes and continue-as-new on the dev server."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from core.contracts.errors import ErrorType
from core.contracts.machine import ActionInput, LifecyclePolicy, SshKeysChanged
from core.contracts.providers import ProviderFeature
from core.contracts.states import InstanceStatus, MachineState
from core.contracts.workflow import MachineSnapshot
from core.search_attributes import MACHINE_STATE
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import MachineHandle, fake_worker, start_machine
from workflows.machine import MachineWorkflow

S = MachineState
POLICY = LifecyclePolicy(
    boot_timeout_seconds=600, provision_attempts=3, boot_poll_seconds=1, heartbeat_timeout_seconds=2
)


async def until(handle: MachineHandle, state: MachineState) -> MachineSnapshot:
    for _ in range(500):
        snapshot = await handle.query(MachineWorkflow.state)
        if snapshot.state is state and not snapshot.outbox:  # and its events written
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError(f"machine is {snapshot.state}, never became {state}")


async def listed(client: Client, handle: MachineHandle, state: MachineState) -> bool:
    query = (
        f"WorkflowId = '{handle.id}' AND MachineState = '{state}' AND ExecutionStatus = 'Running'"
    )
    return [wf.id async for wf in client.list_workflows(query)] == [handle.id]


async def eventually_listed(client: Client, handle: MachineHandle, state: MachineState) -> None:
    for _ in range(200):  # visibility is written just after the workflow task
        if await listed(client, handle, state):
            return
        await asyncio.sleep(0.05)
    found = [
        (wf.run_id, wf.status, wf.typed_search_attributes.get(MACHINE_STATE))
        async for wf in client.list_workflows(f"WorkflowId = '{handle.id}'")
    ]
    raise AssertionError(f"{handle.id} never listed as MachineState = {state!r}: {found}")


async def rejected(handle: MachineHandle, update: object) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, ActionInput())  # type: ignore[call-overload]
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_stop_start_restart_destroy(dev_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        running = await until(handle, S.RUNNING)
        assert running.instance is not None
        instance_id = running.instance.instance_id

        stopped = await handle.execute_update(MachineWorkflow.stop, ActionInput(reason="night"))
        assert (stopped.state, stopped.instance_id) == (S.STOPPED, instance_id)
        assert cloud.instances[instance_id].status is InstanceStatus.STOPPED

        started = await handle.execute_update(MachineWorkflow.start, ActionInput())
        assert (started.state, started.instance_id) == (S.RUNNING, instance_id)
        restarted = await handle.execute_update(MachineWorkflow.restart, ActionInput())
        assert restarted.state is S.RUNNING

        destroyed = await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        assert destroyed.state is S.DESTROYED and destroyed.instance_id is None
        result = await handle.result()

    assert result.state is S.DESTROYED
    assert cloud.live() == []
    # The agent is installed after every boot: create, start, restart.
    assert cloud.calls == [
        f"provision dumont-{handle.id.removeprefix('machine-')}-1",
        f"attach {instance_id}",
        f"install {instance_id}",
        f"stop {instance_id}",
        f"start {instance_id}",
        f"attach {instance_id}",
        f"install {instance_id}",
        f"reboot {instance_id}",
        f"install {instance_id}",
    ]
    assert cloud.states() == [
        S.STARTING, S.RUNNING, S.STOPPING, S.STOPPED, S.STARTING, S.RUNNING,
        S.RESTARTING, S.RUNNING, S.DESTROYING, S.DESTROYED,
    ]  # fmt: skip
    assert [e.seq for e in cloud.events] == list(range(1, len(cloud.events) + 1))
    assert next(e for e in cloud.events if e.state is S.STOPPING).reason == "night"


async def test_bad_transitions_are_rejected_and_change_nothing(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        error = await rejected(handle, MachineWorkflow.start)
        assert (error.type, error.message) == (
            ErrorType.INVALID_TRANSITION,
            "machine is already running",
        )

        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        before = await handle.query(MachineWorkflow.state)
        events, calls = len(cloud.events), list(cloud.calls)
        history_before = len((await handle.fetch_history()).events)

        error = await rejected(handle, MachineWorkflow.restart)
        assert (error.type, error.message) == (
            ErrorType.INVALID_TRANSITION,
            "machine is stopped; start it first",
        )
        error = await rejected(handle, MachineWorkflow.stop)
        assert error.message == "machine is already stopped"

        assert await handle.query(MachineWorkflow.state) == before
        assert (len(cloud.events), cloud.calls) == (events, calls)
        assert len((await handle.fetch_history()).events) == history_before

        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()
        # A destroyed machine's workflow has completed: the server itself refuses updates.
        with pytest.raises(RPCError, match="already completed"):
            await handle.execute_update(MachineWorkflow.start, ActionInput())
        assert (await handle.query(MachineWorkflow.state)).state is S.DESTROYED


async def test_search_attributes_follow_the_state(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    cloud = FakeCloud(POLICY)
    async with fake_worker(client, cloud) as task_queue:
        handle = await start_machine(client, task_queue)
        await until(handle, S.RUNNING)
        await eventually_listed(client, handle, S.RUNNING)
        owned = f"WorkflowId = '{handle.id}' AND MachineOwner = 'u_test' AND GpuName = 'RTX 4090'"
        assert [wf.id async for wf in client.list_workflows(owned)] == [handle.id]

        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        await eventually_listed(client, handle, S.STOPPED)
        assert not await listed(client, handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()


async def test_concurrent_stops_share_one_stop(dev_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        results = await asyncio.gather(
            *(handle.execute_update(MachineWorkflow.stop, ActionInput()) for _ in range(3))
        )
        assert {r.state for r in results} == {S.STOPPED}
        assert [c for c in cloud.calls if c.startswith("stop")] == ["stop i1"]
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()


async def test_new_ssh_keys_reach_the_running_instance(dev_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        cloud.owner_keys.append("ssh-ed25519 AAAAnew owner@desktop")
        await handle.signal(
            MachineWorkflow.ssh_keys_changed, SshKeysChanged(fingerprint="SHA256:x")
        )
        for _ in range(200):
            if cloud.instances["i1"].keys == cloud.owner_keys:
                break
            await asyncio.sleep(0.02)
        assert cloud.instances["i1"].keys == cloud.owner_keys
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()


async def test_destroy_while_starting_cancels_boot_and_destroys_the_instance(
    dev_env: WorkflowEnvironment,
) -> None:
    # The create reaches the provider but its answer never comes back to the workflow.
    cloud = FakeCloud(POLICY, hang_after_create=True)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await asyncio.wait_for(cloud.created.wait(), timeout=30)
        assert (await handle.query(MachineWorkflow.state)).state is S.STARTING

        destroyed = await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        result = await handle.result()

    assert destroyed.state is S.DESTROYED and result.state is S.DESTROYED
    assert cloud.destroyed == ["i1"]
    assert cloud.live() == []
    assert cloud.states()[-2:] == [S.DESTROYING, S.DESTROYED]
    assert S.RUNNING not in cloud.states()


async def test_continue_as_new_keeps_the_machine(dev_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        first_run = (await handle.describe()).run_id
        await until(handle, S.RUNNING)
        cycles = 0
        while (await handle.describe()).run_id == first_run:
            assert cycles < 30, "no continue-as-new after 30 stop/start cycles"
            await handle.execute_update(MachineWorkflow.stop, ActionInput())
            await handle.execute_update(MachineWorkflow.start, ActionInput())
            cycles += 1

        after = await handle.query(MachineWorkflow.state)
        assert after.state is S.RUNNING
        assert after.instance is not None and after.instance.instance_id == "i1"
        assert after.attempt == 1 and after.policy == POLICY
        assert after.counters["events"] == len(cloud.events)
        # The new run still takes actions and numbers its events on from the old one's.
        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        await eventually_listed(dev_env.client, handle, S.STOPPED)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        result = await handle.result()

    assert result.state is S.DESTROYED
    assert [e.seq for e in cloud.events] == list(range(1, len(cloud.events) + 1))
    assert len(cloud.instances) == 1


async def test_an_action_the_provider_cannot_do_is_refused_with_its_reason(
    dev_env: WorkflowEnvironment,
) -> None:
    """Refused by the validator, before anything is recorded: the machine stays as it was (it
    used to record `stopping` and end in error when the provider said no)."""
    reason = "this provider's spot machines cannot stop: destroy it or hibernate it"
    cloud = FakeCloud(POLICY, unsupported={ProviderFeature.STOP_START.value: reason})
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        events_before = len(cloud.events)
        error = await rejected(handle, MachineWorkflow.stop)
        assert (error.type, error.message) == (ErrorType.UNSUPPORTED, reason)
        snapshot = await handle.query(MachineWorkflow.state)
        assert snapshot.state is S.RUNNING and len(cloud.events) == events_before
        assert not any(call.startswith("stop") for call in cloud.calls)
        # What it can do still works.
        assert (
            await handle.execute_update(MachineWorkflow.restart, ActionInput())
        ).state is S.RUNNING
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        assert (await handle.result()).state is S.DESTROYED
