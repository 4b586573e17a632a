"""The defaults on real parts, in skipped time: a machine on the sim whose agent reports an
idle GPU is snapshotted to S3 and destroyed 3 minutes after its setup grace, and shows
`deleted` 30 minutes later with its snapshot kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from core.contracts.agent import AgentReport
from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from core.snapshots import index
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.hibernation.stack import Stack, running_stack
from tests.workflows.helpers import signals_processed
from tests.workflows.machines import (
    MachineHandle,
    create_machine,
    live_instances,
    projection,
    until_state,
)
from workflows.machine import MachineWorkflow

S = MachineState


@pytest.fixture
async def stack(
    tmp_path: Path,
    ts_env: WorkflowEnvironment,
    sim: SimHandle,
    s3: S3Endpoint,
    sqlite_engine: Engine,
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, ts_env.client, sqlite_engine, sim, s3) as stack:
        yield stack


async def skip(env: WorkflowEnvironment, handle: MachineHandle, by: timedelta) -> MachineSnapshot:
    await env.sleep(by)
    return await handle.query(MachineWorkflow.state)


async def test_idle_machine_is_hibernated_then_deleted_with_the_defaults(
    stack: Stack, ts_env: WorkflowEnvironment
) -> None:
    handle = await create_machine(stack.client, stack.engine, stack.task_queue)
    running = await until_state(handle, S.RUNNING)
    await stack.run(running, "echo 'epoch 12' > /workspace/notes.txt")
    # What the API sends when the agent's reports turn idle (GPU 1 % < 5 %, nobody typing).
    at = await ts_env.get_current_time()
    idle = AgentReport(online=True, at=at, gpu_busy=False, busy=False, gpu_utilization=1.0)
    await handle.signal(MachineWorkflow.agent_report, idle)
    await signals_processed(handle)

    still_up = await skip(ts_env, handle, timedelta(minutes=4))  # grace 2 + 2 of the 3
    assert still_up.state is S.IDLE and len(await live_instances(stack.sim, handle)) == 1
    hibernate_at = still_up.hibernation.hibernate_at
    assert hibernate_at is not None

    # Past the deadline: the snapshot runs in real time, skipping resumes after it.
    for _ in range(60):
        hibernated = await skip(ts_env, handle, timedelta(minutes=2))
        if hibernated.state is S.HIBERNATED:
            break
    assert hibernated.state is S.HIBERNATED
    assert hibernated.hibernation.hibernated_at is not None
    assert hibernated.hibernation.hibernated_at >= hibernate_at
    assert await live_instances(stack.sim, handle) == []
    snapshot_id = hibernated.hibernation.snapshot_id
    assert snapshot_id is not None
    row = index.get_snapshot(stack.engine, snapshot_id)
    assert row is not None and row.status == "committed"
    assert projection(stack.engine, handle).status == "hibernated"

    deleted = await skip(ts_env, handle, timedelta(minutes=31))
    assert deleted.state is S.DELETED
    assert deleted.hibernation.snapshot_id == snapshot_id
    kept = index.get_snapshot(stack.engine, snapshot_id)
    assert kept is not None and kept.status == "committed"
    assert projection(stack.engine, handle).status == "deleted"
    await handle.execute_update(MachineWorkflow.destroy, ActionInput())
