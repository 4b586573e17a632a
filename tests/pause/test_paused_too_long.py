"""A machine paused longer than `hibernate_paused_after_minutes` (24 h unless configured) is
hibernated: its stopped disk bills on the host, its snapshot is already committed. Resuming it
then wakes it on a new instance. On the time-skipping server with the real worker, sim and S3;
time is moved in steps (awaiting a result would let the server skip to any workflow's timer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from core.contracts.hibernation import ConfigureInput
from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from core.models import Machine
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.hibernation.stack import running_stack
from tests.hibernation.watch import DESCRIBE
from tests.workflows.machines import (
    MachineHandle,
    create_machine,
    live_instances,
    machine_id,
    recorded_events,
    until_state,
)
from workflows.machine import MachineWorkflow

S = MachineState


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never saw {what}")


async def _query(handle: MachineHandle) -> MachineSnapshot:
    return await handle.query(MachineWorkflow.state)


@pytest.mark.parametrize("limit_minutes", [None, 90])
async def test_a_long_pause_hibernates_and_resume_then_wakes(
    tmp_path: Path,
    ts_env: WorkflowEnvironment,
    sim: SimHandle,
    s3: S3Endpoint,
    sqlite_engine: Engine,
    limit_minutes: int | None,
) -> None:
    env = ts_env
    async with running_stack(
        tmp_path, env.client, sqlite_engine, sim, s3, agent_interval_seconds=3600
    ) as stack:
        handle = await create_machine(stack.client, stack.engine, stack.task_queue)
        running = await until_state(handle, S.RUNNING)
        assert running.instance is not None
        price = running.instance.price_per_hour
        await stack.run(running, "mkdir -p /workspace/run && seq 1 50000 > /workspace/run/log")
        before = await stack.run(running, DESCRIBE)
        if limit_minutes is not None:
            await handle.execute_update(
                MachineWorkflow.configure,
                ConfigureInput(hibernate_paused_after_minutes=limit_minutes),
            )
        await handle.execute_update(MachineWorkflow.pause, ActionInput())
        limit = timedelta(minutes=limit_minutes or 24 * 60)

        # Just before the limit: still paused, on its stopped instance.
        await env.sleep(limit - timedelta(minutes=5))
        assert (await _query(handle)).state is S.PAUSED
        [stopped] = await live_instances(sim, handle)
        assert stopped["actual_status"] == "stopped"

        async def hibernated() -> bool:
            await env.sleep(timedelta(seconds=30))
            state = await _query(handle)
            return state.state is S.HIBERNATED and not state.outbox

        await _until(hibernated, "hibernated once paused past the limit")
        assert await live_instances(sim, handle) == []  # the stopped disk no longer bills
        why = next(
            e.reason
            for e in reversed(recorded_events(stack.engine, handle))
            if e.event_type == "hibernated"
        )
        assert why is not None and "the stopped disk bills" in why

        # The paused hours are counted as saved at the price the machine ran at.
        with Session(stack.engine) as session:
            row = session.get(Machine, machine_id(handle))
            assert row is not None and row.paused_since is None
            assert row.paused_seconds >= limit.total_seconds() - 60
            assert row.paused_cost_avoided == pytest.approx(
                row.paused_seconds / 3600 * price, rel=1e-6
            )

        # Resume takes the wake path: a new instance, the workspace restored.
        await handle.start_update(
            MachineWorkflow.resume, ActionInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )

        async def woke() -> bool:
            return (await _query(handle)).state is S.RUNNING

        await _until(woke, "running again")
        awake = await until_state(handle, S.RUNNING)
        assert awake.instance is not None
        assert awake.instance.instance_id != running.instance.instance_id
        assert await stack.run(awake, DESCRIBE) == before
        assert len(await live_instances(sim, handle)) == 1
        kinds = [e.event_type for e in recorded_events(stack.engine, handle)]
        assert kinds[kinds.index("hibernated") :].count("woke") == 1 and "restored" in kinds
