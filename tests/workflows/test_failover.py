"""The failover state machine on fake activities (the dev server; the idle window on the
time-skipping one): a GPU machine with standby enabled gets its standby alongside, linked to
its agent's sync; a lost GPU moves the machine onto the standby (ssh there) and back onto a new
GPU with the standby's workspace; migrations both ways; a destroy removes the standby, a
failover never does; a standby that cannot be had never holds the GPU back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from core.contracts import machine_workflow_id
from core.contracts.agent import AgentReport
from core.contracts.hibernation import HibernateInput, WakeInput
from core.contracts.machine import ActionInput, LifecyclePolicy, SshKeysChanged
from core.contracts.standby import (
    MigrateInput,
    ProviderEvent,
    Side,
    StandbyConfig,
    StandbyConfigInput,
    StandbyReason,
    SyncHealth,
    SyncReport,
)
from core.contracts.states import InstanceStatus, MachineState
from core.contracts.workflow import MachineInput, MachineSnapshot
from tests.workflows.failover_cloud import FailoverCloud
from tests.workflows.helpers import SPEC, MachineHandle, fake_worker
from workflows.machine import MachineWorkflow

S = MachineState
POLICY = LifecyclePolicy(
    boot_timeout_seconds=600,
    boot_poll_seconds=1,
    heartbeat_timeout_seconds=2,
    wake_offer_retry_seconds=1,  # the first retry of a standby, or of a GPU search
)
STANDBY = StandbyConfig(enabled=True)


async def start(
    client: Client, task_queue: str, standby: StandbyConfig | None = STANDBY
) -> MachineHandle:
    machine_id = f"m{uuid.uuid4().hex[:10]}"
    return await client.start_workflow(
        MachineWorkflow.run,
        MachineInput(machine_id=machine_id, owner_id="u_test", spec=SPEC, standby=standby),
        id=machine_workflow_id(machine_id),
        task_queue=task_queue,
    )


async def until(
    handle: MachineHandle, check: Callable[[MachineSnapshot], bool], what: str
) -> MachineSnapshot:
    snapshot = await handle.query(MachineWorkflow.state)
    for _ in range(600):
        snapshot = await handle.query(MachineWorkflow.state)
        if callable(check) and check(snapshot) and not snapshot.outbox:
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError(f"never {what}: machine is {snapshot.state}, standby {snapshot.standby}")


def linked(snapshot: MachineSnapshot) -> bool:
    st = snapshot.standby
    return (
        snapshot.state is S.RUNNING
        and snapshot.instance is not None
        and st.linked_instance_id == snapshot.instance.instance_id
    )


def on_standby(snapshot: MachineSnapshot) -> bool:
    return snapshot.state is S.STANDBY


def lost(cloud: FailoverCloud, instance_id: str) -> ProviderEvent:
    cloud.instances[instance_id].status = InstanceStatus.GONE
    cloud.links.pop(instance_id, None)  # its agent is gone with it
    return ProviderEvent(
        instance_id=instance_id, status=InstanceStatus.GONE, at=datetime.now(UTC), detail="gone"
    )


async def test_a_gpu_machine_with_standby_gets_one_linked_to_its_sync(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
    [gpu], [standby] = cloud.gpus(), cloud.standbys()
    assert state.standby.instance is not None
    assert state.standby.instance.instance_id == standby.instance_id
    assert standby.label.endswith("-sb1") and cloud.links == {gpu.instance_id: standby.instance_id}
    assert standby.keys == list(cloud.owner_keys)  # the user's keys reach the standby
    kinds = [e.event_type for e in cloud.events]
    assert "standby_created" in kinds and "standby_linked" in kinds


async def test_a_lost_gpu_moves_the_machine_to_its_standby_then_onto_a_new_gpu(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        assert state.instance is not None
        old_gpu = state.instance.instance_id
        cloud.instances[old_gpu].workspace = {"train.log": "epoch 7"}
        cloud.sync()
        cloud.offers = []  # no GPU to be had for now: the machine stays on its standby
        await handle.signal(MachineWorkflow.provider_event, lost(cloud, old_gpu))
        waiting = await until(
            handle, lambda s: s.state is S.STANDBY and s.standby.hunts >= 1, "on standby"
        )
        assert waiting.standby.side is Side.CPU
        assert waiting.standby.reason is StandbyReason.GPU_LOST
        assert waiting.instance is None and waiting.standby.hunt_at is not None
        # What the user reaches meanwhile is the standby.
        on_cpu = [e for e in cloud.events if e.event_type == "on_standby"][-1]
        assert on_cpu.instance is not None
        assert on_cpu.instance.instance_id == waiting.standby.instance.instance_id  # type: ignore[union-attr]
        assert on_cpu.instance.ssh_user == "dumont"
        cloud.offers = ["offer-9"]  # a GPU again: the next hunt takes it
        back = await until(handle, linked, "back on a GPU")
    assert back.instance is not None and back.instance.instance_id != old_gpu
    assert back.standby.side is Side.GPU and back.standby.reason is None
    new_gpu = cloud.instances[back.instance.instance_id]
    assert new_gpu.workspace == {"train.log": "epoch 7"}  # every byte of the last sync
    assert cloud.links == {new_gpu.instance_id: waiting.standby.instance.instance_id}  # type: ignore[union-attr]
    assert len(cloud.standbys()) == 1  # the failover kept the standby, made no other
    assert [i.instance_id for i in cloud.gpus()] == [new_gpu.instance_id]
    kinds = [e.event_type for e in cloud.events]
    for kind in ("gpu_lost", "on_standby", "gpu_search_failed", "migrating", "back_on_gpu"):
        assert kind in kinds


async def test_a_silent_agent_moves_nothing_while_the_provider_says_running(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        assert state.instance is not None
        gpu = state.instance.instance_id
        silent = AgentReport(online=False, at=datetime.now(UTC))
        await handle.signal(MachineWorkflow.agent_report, silent)
        # The check answered (the agent's re-install, which the run loop does next, began).
        after = await until(
            handle,
            lambda _: f"check {gpu}" in cloud.calls and cloud.calls.count(f"install {gpu}") >= 2,
            "checked",
        )
    assert after.state is S.RUNNING and after.standby.moved_at is None  # a blip
    assert [i.instance_id for i in cloud.gpus()] == [gpu]


async def test_a_silent_agent_whose_provider_confirms_the_loss_fails_over(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        assert state.instance is not None
        gpu = state.instance.instance_id
        cloud.instances[gpu].status = InstanceStatus.FAILED
        silent = AgentReport(online=False, at=datetime.now(UTC))
        await handle.signal(MachineWorkflow.agent_report, silent)
        moved = await until(handle, lambda s: s.standby.moved_at is not None, "moved")
    assert moved.instance is None or moved.instance.instance_id != gpu
    assert cloud.instances[gpu].status is InstanceStatus.GONE  # the failed GPU bills no more


async def test_migrate_to_cpu_and_back_keeps_the_workspace(dev_env: WorkflowEnvironment) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        assert state.instance is not None
        cloud.instances[state.instance.instance_id].workspace = {"model.pt": "weights-3"}
        moved = await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.CPU))
        assert moved.state is S.STANDBY and moved.side is Side.CPU
        assert moved.instance is not None and moved.instance.ssh_user == "dumont"
        assert f"sync {state.instance.instance_id}" in cloud.calls  # the final sync first
        assert cloud.gpus() == []  # the GPU is released
        parked = await handle.query(MachineWorkflow.state)
        assert parked.standby.reason is StandbyReason.REQUESTED and parked.standby.hunt_at is None
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.CPU))
        assert "already on its standby" in str(refused.value.cause)
        back = await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.GPU))
        assert back.state is S.RUNNING and back.side is Side.GPU
        await until(handle, linked, "linked again")
    [gpu] = cloud.gpus()
    assert gpu.workspace == {"model.pt": "weights-3"}


async def test_a_failed_final_sync_keeps_the_gpu_running(dev_env: WorkflowEnvironment) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        cloud.sync_error = "ssh: connect to host 127.64.0.9 port 22: Connection refused"
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.CPU))
        after = await handle.query(MachineWorkflow.state)
    assert "Connection refused" in str(failed.value.cause)
    assert after.state is S.RUNNING and after.instance == state.instance
    assert len(cloud.gpus()) == 1


async def test_destroy_removes_the_standby_and_a_failover_never_does(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        assert state.instance is not None
        cloud.offers = []
        await handle.signal(MachineWorkflow.provider_event, lost(cloud, state.instance.instance_id))
        await until(handle, on_standby, "on standby")
        assert len(cloud.standbys()) == 1
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()
    assert cloud.live() == []
    assert "standby_removed" in [e.event_type for e in cloud.events]


async def test_a_standby_that_cannot_be_had_never_holds_the_gpu_back(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY, cpu_offers=[])
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(
            handle,
            lambda s: s.state is S.RUNNING and s.standby.problem is not None,
            "running without a standby",
        )
        assert state.standby.instance is None and "no CPU offer" in state.standby.problem  # type: ignore[operator]
        assert state.standby.retry_at is not None
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.CPU))
        assert "no standby" in str(refused.value.cause)
        kinds = [e.event_type for e in cloud.events]
        assert "standby_failed" in kinds and "running" in kinds
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
    assert cloud.live() == []


async def test_a_failing_sync_to_a_preempted_standby_gets_a_new_standby(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        first = state.standby.instance
        assert first is not None
        cloud.instances[first.instance_id].status = InstanceStatus.STOPPED  # spot preemption
        await handle.signal(
            MachineWorkflow.standby_sync,
            SyncReport(health=SyncHealth.FAILING, at=datetime.now(UTC), error="timed out"),
        )
        renewed = await until(
            handle,
            lambda s: linked(s) and s.standby.instance.instance_id != first.instance_id,  # type: ignore[union-attr]
            "a new standby linked",
        )
    assert renewed.standby.instance is not None and renewed.standby.instance.label.endswith("-sb2")
    assert [i.instance_id for i in cloud.standbys()] == [renewed.standby.instance.instance_id]
    kinds = [e.event_type for e in cloud.events]
    assert kinds.index("sync_failing") < kinds.index("standby_lost")


async def test_a_lost_instance_without_a_standby_is_an_error_with_why(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue, standby=None)
        state = await until(handle, lambda s: s.state is S.RUNNING, "running")
        assert state.instance is not None
        await handle.signal(MachineWorkflow.provider_event, lost(cloud, state.instance.instance_id))
        failed = await until(handle, lambda s: s.state is S.ERROR, "in error")
    assert "instance lost" in (failed.reason or "") and failed.instance is None
    assert cloud.standbys() == []


async def test_disabling_standby_removes_it_and_stops_the_sync(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        assert state.instance is not None
        view = await handle.execute_update(
            MachineWorkflow.configure_standby,
            StandbyConfigInput(config=StandbyConfig(enabled=False)),
        )
        assert view.standby.config.enabled is False
        await until(handle, lambda s: s.standby.instance is None, "standby removed")
        with pytest.raises(WorkflowUpdateFailedError) as bad:
            await handle.execute_update(
                MachineWorkflow.configure_standby,
                StandbyConfigInput(config=StandbyConfig(enabled=True, sync_interval_seconds=1)),
            )
    assert "sync_interval_seconds" in str(bad.value.cause)
    assert cloud.standbys() == [] and len(cloud.gpus()) == 1
    assert f"unlink {state.instance.instance_id}" in cloud.calls


async def test_an_idle_machine_with_a_standby_moves_to_it_instead_of_hibernating(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    standby = StandbyConfig(enabled=True, idle_migrate_minutes=10)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start(ts_env.client, task_queue, standby=standby)
        for _ in range(200):
            state = await handle.query(MachineWorkflow.state)
            if linked(state):
                break
            await ts_env.sleep(1)
        assert linked(state)
        idle = AgentReport(online=True, at=datetime.now(UTC), gpu_busy=False, busy=False)
        await handle.signal(MachineWorkflow.agent_report, idle)
        await ts_env.sleep(timedelta(minutes=4))  # past hibernation's 3 min, not the 10
        assert (await handle.query(MachineWorkflow.state)).state.is_up()
        await ts_env.sleep(timedelta(minutes=10))
        parked = await handle.query(MachineWorkflow.state)
        assert parked.state is S.STANDBY and parked.standby.reason is StandbyReason.IDLE
        await ts_env.sleep(timedelta(minutes=30))  # an idle migration does not hunt a GPU
        still = await handle.query(MachineWorkflow.state)
    assert still.state is S.STANDBY and cloud.gpus() == []
    assert still.hibernation.snapshot_id is None  # moved, not hibernated


async def test_a_machine_on_its_standby_hibernates_from_it_and_wakes_on_a_gpu(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        state = await until(handle, linked, "linked")
        assert state.instance is not None
        cloud.instances[state.instance.instance_id].workspace = {"notes.md": "day 3"}
        cloud.sync()
        cloud.offers = []
        await handle.signal(MachineWorkflow.provider_event, lost(cloud, state.instance.instance_id))
        await until(handle, on_standby, "on standby")
        slept = await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        assert slept.state is S.HIBERNATED
        assert cloud.live() == []  # the standby goes too: the snapshot holds the workspace
        assert cloud.snapshots[slept.snapshot_id] == {"notes.md": "day 3"}
        cloud.offers = ["offer-7"]
        woke = await handle.execute_update(MachineWorkflow.wake, WakeInput())
        assert woke.state is S.RUNNING
        again = await until(handle, linked, "a new standby linked")
    assert cloud.instances[woke.instance.instance_id].workspace == {"notes.md": "day 3"}
    assert again.standby.side is Side.GPU and again.standby.attempt == 2


async def test_keys_the_user_adds_later_reach_the_standby_too(dev_env: WorkflowEnvironment) -> None:
    cloud = FailoverCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start(dev_env.client, task_queue)
        await until(handle, linked, "linked")
        cloud.owner_keys.append("ssh-ed25519 AAAAdesk owner@desk")
        await handle.signal(MachineWorkflow.ssh_keys_changed, SshKeysChanged(fingerprint="x"))
        [standby] = cloud.standbys()
        for _ in range(300):
            if "ssh-ed25519 AAAAdesk owner@desk" in standby.keys:
                break
            await asyncio.sleep(0.02)
    assert standby.keys == list(cloud.owner_keys)
    [gpu] = cloud.gpus()
    assert gpu.keys == list(cloud.owner_keys)
