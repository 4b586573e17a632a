"""Provisioning against the time-skipping server: boot delays and deadlines in skipped time."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.states import InstanceStatus, MachineState
from core.contracts.workflow import MachineSnapshot
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import MachineHandle, fake_worker, start_machine
from workflows.machine import MachineWorkflow

POLICY = LifecyclePolicy(boot_timeout_seconds=600, provision_attempts=3, boot_poll_seconds=15)
SETTLED = {MachineState.RUNNING, MachineState.ERROR}


async def settle(env: WorkflowEnvironment, handle: MachineHandle) -> MachineSnapshot:
    """Skip time until provisioning has finished one way or the other."""
    for _ in range(200):
        snapshot = await handle.query(MachineWorkflow.state)
        if snapshot.state in SETTLED:
            return snapshot
        await env.sleep(timedelta(seconds=30))
    raise AssertionError(f"machine still {snapshot.state} after 100 minutes of skipped time")


async def destroy(handle: MachineHandle) -> None:
    """End the workflow with nothing in flight (terminating it mid-activity can leave the test
    server's clock locked for the next test)."""
    await handle.execute_update(MachineWorkflow.destroy, ActionInput())
    assert (await handle.result()).state is MachineState.DESTROYED


async def test_machine_runs_once_its_boot_delay_has_passed(ts_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY, boot_seconds=lambda attempt: 240)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        snapshot = await settle(ts_env, handle)

        assert snapshot.state is MachineState.RUNNING
        assert snapshot.instance is not None and snapshot.instance.ssh_host == "127.0.0.1"
        (instance,) = cloud.instances.values()
        assert instance.status is InstanceStatus.RUNNING
        assert snapshot.state_since is not None
        assert snapshot.state_since - instance.created_at >= timedelta(seconds=240)
        assert instance.keys == cloud.owner_keys
        assert cloud.destroyed == []
        await destroy(handle)

    assert cloud.states() == [
        MachineState.STARTING,
        MachineState.RUNNING,
        MachineState.DESTROYING,
        MachineState.DESTROYED,
    ]


async def test_missed_boot_deadline_destroys_instance_and_tries_another_offer(
    ts_env: WorkflowEnvironment,
) -> None:
    # The first host never boots within the 600 s deadline; the second boots in a minute.
    cloud = FakeCloud(POLICY, boot_seconds=lambda attempt: 10_000 if attempt == 1 else 60)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        snapshot = await settle(ts_env, handle)

        assert snapshot.state is MachineState.RUNNING
        assert cloud.destroyed == ["i1"]
        assert [i.instance_id for i in cloud.live()] == ["i2"]
        assert snapshot.instance is not None and snapshot.instance.instance_id == "i2"
        assert snapshot.failed_offers == ["offer-1"]
        assert cloud.instances["i2"].offer_id == "offer-2"
        assert snapshot.attempt == 2
        (failure,) = [e for e in cloud.events if e.event_type == "boot_failed"]
        assert failure.reason is not None and "not up within 600 s" in failure.reason
        await destroy(handle)


async def test_no_matching_offer_puts_machine_in_error_saying_what_was_searched(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY, offers=[])
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        snapshot = await settle(ts_env, handle)

        assert snapshot.state is MachineState.ERROR
        assert snapshot.reason is not None
        assert "no offer matches" in snapshot.reason
        assert "RTX 4090" in snapshot.reason and "region EU" in snapshot.reason
        assert cloud.events[-1].state is MachineState.ERROR
        assert cloud.events[-1].reason == snapshot.reason
        assert cloud.instances == {}
        await destroy(handle)


async def test_gives_up_with_error_after_every_attempt_failed(ts_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY, fail_attempts=99)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        snapshot = await settle(ts_env, handle)

        assert snapshot.state is MachineState.ERROR
        assert snapshot.reason is not None and "after 3 attempts" in snapshot.reason
        assert "OCI runtime create failed" in snapshot.reason
        assert cloud.destroyed == ["i1", "i2", "i3"]
        assert cloud.live() == []
        assert snapshot.instance is None
        assert len({i.offer_id for i in cloud.instances.values()}) == 3  # each on another offer
        await destroy(handle)
