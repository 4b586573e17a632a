"""Crash safety of pause and resume: `python -m worker` killed with SIGKILL during a pause (the
snapshot committed, the instance not stopped yet) and during a resume (the instance started,
the machine not running yet), then started again. Each ends in the state asked for, on exactly
one instance, with the workspace intact."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateStage

from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from tests.hibernation.conftest import CrashStack
from tests.hibernation.watch import (
    DESCRIBE,
    MAKE_WORKSPACE,
    assert_only_instance,
    event_kinds,
    machine_snapshots,
    run_on,
    until,
)
from tests.workflows.machines import create_machine, live_instances, until_state
from workflows.machine import MachineWorkflow

# A crash matrix: the slow tier (scripts/test.sh --slow).
pytestmark = pytest.mark.slow

S = MachineState


async def test_killed_during_pause_then_during_resume(crash_stack: CrashStack) -> None:
    stack = crash_stack
    handle = await create_machine(stack.client, stack.engine, stack.task_queue)
    running = await until_state(handle, S.RUNNING)
    assert running.instance is not None
    instance_id = running.instance.instance_id
    await run_on(stack.identity, running, MAKE_WORKSPACE)
    before = await run_on(stack.identity, running, DESCRIBE)

    # Every provider call takes 1.5 s: the stop comes well after the snapshot's commit.
    await stack.sim.admin.set_latency(1.5)
    pause = await handle.start_update(
        MachineWorkflow.pause, ActionInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )

    async def committed() -> str | None:
        rows = machine_snapshots(stack.engine, handle)
        return rows[0].id if rows and rows[0].status == "committed" else None

    snapshot_id = await until(committed, "the pause's snapshot committed")
    await stack.kill_worker(handle)
    [live] = await live_instances(stack.sim, handle)
    assert (str(live["id"]), live["actual_status"]) == (instance_id, "running")  # not stopped
    await stack.sim.admin.set_latency(0)
    await stack.worker.start()

    paused = await pause.result()
    assert (paused.state, paused.instance_id) == (S.PAUSED, instance_id)
    [live] = await live_instances(stack.sim, handle)
    assert (str(live["id"]), live["actual_status"]) == (instance_id, "stopped")
    assert len(machine_snapshots(stack.engine, handle)) == 1  # the retry took no second one
    state = await handle.query(MachineWorkflow.state)
    assert state.hibernation.snapshot_id == snapshot_id

    # Resume, and kill the worker once the instance is starting but not yet running.
    await stack.sim.admin.set_boot_delay(3)
    resume = await handle.start_update(
        MachineWorkflow.resume, ActionInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )

    async def starting() -> bool | None:
        instance = await stack.sim.admin.instance(int(instance_id))
        return True if instance["actual_status"] == "loading" else None

    await until(starting, "the instance starting on its host")
    await stack.kill_worker(handle)
    await stack.worker.start()

    resumed = await resume.result()
    assert (resumed.state, resumed.instance_id) == (S.RUNNING, instance_id)
    await assert_only_instance(stack.engine, stack.sim, handle, instance_id)
    awake = await until_state(handle, S.RUNNING)
    assert await run_on(stack.identity, awake, DESCRIBE) == before
    kinds = event_kinds(stack.engine, handle)
    assert [kinds.count(k) for k in ("paused", "resumed")] == [1, 1]
