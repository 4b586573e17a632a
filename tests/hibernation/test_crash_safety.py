"""Crash safety of hibernate and wake: `python -m worker` killed with SIGKILL at each risky point,
then started again, finishes the job. A hibernate never destroys an instance before its snapshot
is committed and leaves nothing billing; a wake ends with exactly one live instance; the
workspace comes back byte for byte.

Each test follows one machine through two crashes (a hibernate's, then a wake's), against the
sim marketplace, a real S3 endpoint and the engine running on the machines over SSH.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateHandle, WorkflowUpdateStage

from core.contracts.activities import ActivityName
from core.contracts.hibernation import HibernateInput, HibernateResult, WakeInput, WakeResult
from core.contracts.states import MachineState
from core.snapshots import index
from tests.hibernation.conftest import CrashStack
from tests.hibernation.watch import (
    DESCRIBE,
    MAKE_WORKSPACE,
    assert_hibernated_safely,
    assert_only_instance,
    event_kinds,
    heartbeat,
    machine_snapshots,
    recorded_events,
    run_on,
    running_activity,
    staged_bytes,
    stored_packs,
    until,
)
from tests.workflows.machines import MachineHandle, create_machine, live_instances, until_state
from workflows.machine import MachineWorkflow

# A crash matrix: the slow tier (scripts/test.sh --slow).
pytestmark = pytest.mark.slow

S = MachineState


async def _running_with_workspace(stack: CrashStack) -> tuple[MachineHandle, str, str]:
    """A running machine holding a big workspace: its handle, instance id and description."""
    handle = await create_machine(stack.client, stack.engine, stack.task_queue)
    running = await until_state(handle, S.RUNNING)
    await run_on(stack.identity, running, MAKE_WORKSPACE)
    assert running.instance is not None
    return handle, running.instance.instance_id, await run_on(stack.identity, running, DESCRIBE)


async def _start_hibernate(handle: MachineHandle) -> WorkflowUpdateHandle[HibernateResult]:
    return await handle.start_update(
        MachineWorkflow.hibernate,
        HibernateInput(reason="crash test"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )


async def _start_wake(handle: MachineHandle) -> WorkflowUpdateHandle[WakeResult]:
    return await handle.start_update(
        MachineWorkflow.wake,
        WakeInput(reason="crash test"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )


async def test_killed_during_upload_then_after_the_wake_rented(crash_stack: CrashStack) -> None:
    stack = crash_stack
    handle, first_instance, before = await _running_with_workspace(stack)

    # Hibernate, and kill the worker once the first pack of the snapshot reaches the store.
    update = await _start_hibernate(handle)

    async def uploading() -> bool | None:
        return True if stored_packs(stack.s3) else None

    await until(uploading, "a pack arriving in the store")
    await stack.kill_worker(handle)
    (pending,) = machine_snapshots(stack.engine, handle)
    assert pending.status == "pending"  # killed mid-upload, not after
    assert [str(i["id"]) for i in await live_instances(stack.sim, handle)] == [first_instance]
    await stack.worker.start()

    hibernated = await update.result()
    assert hibernated.state is S.HIBERNATED and hibernated.instance_destroyed
    assert hibernated.snapshot_id == pending.id  # the retry resumed the same snapshot
    await assert_hibernated_safely(
        stack.engine, stack.sim, handle, hibernated.snapshot_id, first_instance
    )
    row = index.get_snapshot(stack.engine, hibernated.snapshot_id)
    assert row is not None
    # Resumed, not started over: what the killed attempt stored was not uploaded again.
    assert row.uploaded_bytes <= row.logical_bytes * 1.02 + 2**20, row

    # Wake, and kill the worker once the new instance is rented but not yet booted.
    await stack.sim.admin.set_boot_delay(3)
    wake = await _start_wake(handle)
    rented = await until(lambda: _first_live(stack, handle), "the wake's new instance")
    assert rented != first_instance
    await stack.kill_worker(handle)
    assert (await stack.sim.admin.instance(int(rented)))["actual_status"] != "running"
    await stack.worker.start()

    woke = await wake.result()
    assert woke.state is S.RUNNING
    assert woke.instance.instance_id == rented  # the restarted wake kept the instance it rented
    await assert_only_instance(stack.engine, stack.sim, handle, rented)
    awake = await until_state(handle, S.RUNNING)
    assert await run_on(stack.identity, awake, DESCRIBE) == before

    kinds = event_kinds(stack.engine, handle)
    assert [kinds.count(k) for k in ("hibernated", "restored", "woke")] == [1, 1, 1]


async def test_killed_after_commit_then_during_restore_then_during_destroy(
    crash_stack: CrashStack,
) -> None:
    stack = crash_stack
    handle, first_instance, before = await _running_with_workspace(stack)

    # Every provider call now takes 1.5 s: the destroy comes well after the commit.
    await stack.sim.admin.set_latency(1.5)
    update = await _start_hibernate(handle)

    async def committed() -> str | None:
        rows = machine_snapshots(stack.engine, handle)
        return rows[0].id if rows and rows[0].status == "committed" else None

    snapshot_id = await until(committed, "the snapshot committed")
    await stack.kill_worker(handle)
    # The snapshot is committed, the instance not destroyed yet.
    assert [str(i["id"]) for i in await live_instances(stack.sim, handle)] == [first_instance]
    await stack.sim.admin.set_latency(0)
    await stack.worker.start()

    hibernated = await update.result()
    assert (hibernated.state, hibernated.snapshot_id) == (S.HIBERNATED, snapshot_id)
    await assert_hibernated_safely(stack.engine, stack.sim, handle, snapshot_id, first_instance)
    assert len(machine_snapshots(stack.engine, handle)) == 1  # the retry took no second one

    # Wake, and kill the worker while the restore writes the workspace on the new instance.
    wake = await _start_wake(handle)
    rented = await until(lambda: _first_live(stack, handle), "the wake's new instance")
    workspace = Path((await stack.sim.admin.instance(int(rented)))["workspace_path"])

    async def restoring() -> bool | None:
        return True if staged_bytes(workspace) > 0 else None

    await until(restoring, "the restore writing the workspace")
    await stack.kill_worker(handle)
    assert "restored" not in event_kinds(stack.engine, handle)
    await stack.worker.start()

    woke = await wake.result()
    assert (woke.state, woke.instance.instance_id) == (S.RUNNING, rented)
    await assert_only_instance(stack.engine, stack.sim, handle, rented)
    awake = await until_state(handle, S.RUNNING)
    assert await run_on(stack.identity, awake, DESCRIBE) == before
    # The retried restore went on from what the killed one had staged, not from nothing.
    [restored] = [e for e in recorded_events(stack.engine, handle) if e.event_type == "restored"]
    assert "kept from an interrupted attempt" in (restored.reason or "")

    # Hibernate again, and kill the worker while the provider is destroying the instance.
    await stack.sim.admin.set_latency(1.5)
    update = await _start_hibernate(handle)

    async def destroying() -> bool | None:
        pending = await running_activity(handle, ActivityName.DESTROY_INSTANCES)
        # It reports the instance it is about to destroy, then asks the provider to.
        return True if pending is not None and heartbeat(pending) is not None else None

    await until(destroying, "the destroy under way")
    await stack.kill_worker(handle)
    # The provider carries out the destroy the dead worker asked for.
    await until(lambda: _gone(stack, handle), "the instance destroyed at the provider")
    await stack.sim.admin.set_latency(0)
    await stack.worker.start()

    again = await update.result()
    assert again.state is S.HIBERNATED and again.snapshot_id != snapshot_id
    await assert_hibernated_safely(stack.engine, stack.sim, handle, again.snapshot_id, rented)

    kinds = event_kinds(stack.engine, handle)
    assert [kinds.count(k) for k in ("hibernated", "restored", "woke")] == [2, 1, 1]


async def _first_live(stack: CrashStack, handle: MachineHandle) -> str | None:
    live = await live_instances(stack.sim, handle)
    return str(live[0]["id"]) if live else None


async def _gone(stack: CrashStack, handle: MachineHandle) -> bool | None:
    return True if not await live_instances(stack.sim, handle) else None
