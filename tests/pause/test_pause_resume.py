"""Pause and resume through the real pieces: a worker with every activity, the sim marketplace
with SSH machines, an S3 endpoint. A pause commits a snapshot before it stops the instance; a
resume comes back on the same host, or, when the host was taken while paused, on a new offer
with the workspace restored byte for byte and the old stopped instance destroyed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from core.snapshots import index
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.hibernation.stack import Stack, running_stack
from tests.hibernation.watch import DESCRIBE
from tests.workflows.machines import (
    MachineHandle,
    create_machine,
    live_instances,
    recorded_events,
    until_state,
)
from workflows.machine import MachineWorkflow

S = MachineState

MAKE_WORKSPACE = """
set -e
cd /workspace
mkdir -p models data
head -c 40M /dev/urandom > models/big.ckpt
for i in $(seq 1 30); do head -c $((RANDOM * 2)) /dev/urandom > data/f$i.bin; done
ln -s models/big.ckpt latest.ckpt
chmod 640 data/f1.bin
"""


@pytest.fixture
async def stack(
    tmp_path: Path,
    dev_env: WorkflowEnvironment,
    sim: SimHandle,
    s3: S3Endpoint,
    sqlite_engine: Engine,
) -> AsyncIterator[Stack]:
    async with running_stack(
        tmp_path, dev_env.client, sqlite_engine, sim, s3, resume_same_host_seconds=20
    ) as stack:
        yield stack


async def _running_with_workspace(stack: Stack) -> tuple[MachineHandle, str, str]:
    handle = await create_machine(stack.client, stack.engine, stack.task_queue)
    running = await until_state(handle, S.RUNNING)
    assert running.instance is not None
    await stack.run(running, MAKE_WORKSPACE)
    return handle, running.instance.instance_id, await stack.run(running, DESCRIBE)


def _event(stack: Stack, handle: MachineHandle, kind: str) -> str:
    reasons = [e.reason for e in recorded_events(stack.engine, handle) if e.event_type == kind]
    assert reasons, f"no {kind} event"
    return reasons[-1] or ""


async def test_pause_commits_a_snapshot_stops_the_instance_and_resumes_on_the_same_host(
    stack: Stack,
) -> None:
    handle, instance_id, before = await _running_with_workspace(stack)

    paused = await handle.execute_update(MachineWorkflow.pause, ActionInput(reason="lunch"))
    assert (paused.state, paused.instance_id) == (S.PAUSED, instance_id)
    state = await handle.query(MachineWorkflow.state)
    snapshot_id = state.hibernation.snapshot_id
    assert snapshot_id is not None
    row = index.get_snapshot(stack.engine, snapshot_id)
    assert row is not None and row.status == "committed"
    [live] = await live_instances(stack.sim, handle)
    assert str(live["id"]) == instance_id and live["actual_status"] == "stopped"
    assert "stopped" in _event(stack, handle, "paused") and snapshot_id in _event(
        stack, handle, "paused"
    )

    resumed = await handle.execute_update(MachineWorkflow.resume, ActionInput())
    assert (resumed.state, resumed.instance_id) == (S.RUNNING, instance_id)
    awake = await until_state(handle, S.RUNNING)
    assert await stack.run(awake, DESCRIBE) == before
    assert "resumed on its host in" in _event(stack, handle, "resumed")

    kinds = [e.event_type for e in recorded_events(stack.engine, handle)]
    for kind in ("pausing", "paused", "resuming", "resumed"):
        assert kind in kinds
    assert "restored" not in kinds  # the same disk: nothing to restore


async def test_a_host_taken_while_paused_resumes_on_a_new_offer_from_the_snapshot(
    stack: Stack,
) -> None:
    handle, old_id, before = await _running_with_workspace(stack)
    await handle.execute_update(MachineWorkflow.pause, ActionInput())
    await stack.sim.admin.take_host(int(old_id))

    resumed = await handle.execute_update(MachineWorkflow.resume, ActionInput())
    assert resumed.state is S.RUNNING and resumed.instance_id != old_id
    awake = await until_state(handle, S.RUNNING)
    assert await stack.run(awake, DESCRIBE) == before  # byte for byte
    # Exactly one instance at the end: the stopped one (its disk bills) is destroyed.
    assert [str(i["id"]) for i in await live_instances(stack.sim, handle)] == [resumed.instance_id]
    how = _event(stack, handle, "resumed")
    assert "on a new host" in how and f"stopped instance {old_id} destroyed" in how, how
    assert "cannot take it back" in _event(stack, handle, "resuming")
    assert "restored" in [e.event_type for e in recorded_events(stack.engine, handle)]


async def test_a_failed_safety_snapshot_keeps_the_machine_running(stack: Stack) -> None:
    handle, instance_id, before = await _running_with_workspace(stack)
    stack.s3.stop()

    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(MachineWorkflow.pause, ActionInput())
    assert "snapshot failed, nothing stopped" in str(failed.value.cause)
    state = await handle.query(MachineWorkflow.state)
    assert state.state in (S.RUNNING, S.IDLE)
    [live] = await live_instances(stack.sim, handle)
    assert str(live["id"]) == instance_id and live["actual_status"] == "running"
    assert await stack.run(state, DESCRIBE) == before
    why = _event(stack, handle, "pause_failed")
    assert stack.s3.endpoint.removeprefix("http://") in why and "keeps running" in why


async def test_concurrent_resumes_join_the_one_under_way(stack: Stack) -> None:
    handle, instance_id, _ = await _running_with_workspace(stack)
    await handle.execute_update(MachineWorkflow.pause, ActionInput())
    first = await handle.start_update(
        MachineWorkflow.resume, ActionInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    second = await handle.execute_update(MachineWorkflow.resume, ActionInput())
    assert (await first.result()).state is second.state is S.RUNNING
    assert second.instance_id == instance_id
    kinds = [e.event_type for e in recorded_events(stack.engine, handle)]
    assert kinds.count("resumed") == 1 and kinds.count("resuming") == 1
