"""A database outage never holds billing on: with PostgreSQL cut off from a worker that keeps
running, a destroy accepted just before the cut and an idle hibernation whose deadline falls in
the outage both reach the provider (the sim's instances are gone); once the database is back,
every event the machines recorded lands, exactly once and in order, and the snapshot taken
during the outage is indexed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from core.contracts.agent import AgentReport
from core.contracts.hibernation import ConfigureInput
from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from core.db import make_engine, migrate
from core.snapshots import index
from core.snapshots.commit_records import commit_key, import_commits
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.fixtures.tcp_proxy import TcpProxy
from tests.hibernation.stack import running_stack
from tests.workflows.helpers import signals_processed
from tests.workflows.machines import (
    MachineHandle,
    create_machine,
    instance_rows,
    live_instances,
    recorded_events,
    until_state,
)
from workflows.machine import MachineWorkflow

S = MachineState


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def proxied_engine(postgres_url: str, proxy: TcpProxy) -> Iterator[Engine]:
    """The database as the worker sees it: through the proxy."""
    engine = make_engine(postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
    migrate(engine)
    yield engine
    engine.dispose()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(600):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never {what}")


async def query(handle: MachineHandle) -> MachineSnapshot:
    return await handle.query(MachineWorkflow.state)


async def test_destroy_and_hibernate_reach_the_provider_while_the_database_is_out(
    tmp_path: Path,
    ts_env: WorkflowEnvironment,
    sim: SimHandle,
    s3: S3Endpoint,
    proxy: TcpProxy,
    proxied_engine: Engine,
) -> None:
    env = ts_env
    async with running_stack(
        tmp_path,
        env.client,
        proxied_engine,
        sim,
        s3,
        idle_grace_seconds=0,
        agent_interval_seconds=3600,  # no agent deadline falls in the test
    ) as stack:
        doomed = await create_machine(stack.client, proxied_engine, stack.task_queue)
        sleepy = await create_machine(stack.client, proxied_engine, stack.task_queue)
        await until_state(doomed, S.RUNNING)
        up = await until_state(sleepy, S.RUNNING)
        await stack.run(up, "echo 'epoch 7' > /workspace/progress.txt")
        await sleepy.execute_update(
            MachineWorkflow.configure,
            ConfigureInput(pause_after_minutes=1, delete_after_minutes=24 * 60),
        )
        at = await env.get_current_time()
        await sleepy.signal(
            MachineWorkflow.agent_report,
            AgentReport(online=True, at=at, gpu_busy=False, busy=False, gpu_utilization=0.0),
        )
        await signals_processed(sleepy)

        await doomed.start_update(
            MachineWorkflow.destroy,
            ActionInput(reason="done with it"),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        proxy.cut()

        # The destroy goes on without the database: the instance is gone, billing stops.
        async def doomed_gone() -> bool:
            return await live_instances(sim, doomed) == [] and (
                (await query(doomed)).state is S.DESTROYED
            )

        await until(doomed_gone, "destroyed during the outage")
        # Its run stays open until its history is written: nothing recorded is dropped.
        assert (await doomed.describe()).status is WorkflowExecutionStatus.RUNNING
        assert (await query(doomed)).outbox

        # The idle deadline passes in the outage: snapshot (to the store) and destroy.
        async def sleepy_hibernated() -> bool:
            await env.sleep(timedelta(seconds=30))
            return (await query(sleepy)).state is S.HIBERNATED

        await until(sleepy_hibernated, "hibernated during the outage")
        assert await live_instances(sim, sleepy) == []
        hibernated = await query(sleepy)
        snapshot_id = hibernated.hibernation.snapshot_id
        assert snapshot_id is not None
        assert s3.store().size(commit_key(hibernated.owner_id, snapshot_id)) is not None

        proxy.restore()

        # The flushers' retries come back within their 30 s backoff. Time is moved in steps
        # of that size, never by awaiting a result (even a finished one): that lets the test
        # server skip to the next timer of any workflow, and sleepy's is its deletion.
        async def both_written() -> bool:
            await env.sleep(timedelta(seconds=30))
            doomed_ended = (await doomed.describe()).status is WorkflowExecutionStatus.COMPLETED
            return doomed_ended and not (await query(sleepy)).outbox

        await until(both_written, "written once the database was back")
        assert (await query(doomed)).state is S.DESTROYED
        numbered = {h.id: (await query(h)).counters["events"] for h in (doomed, sleepy)}

    for handle, last in ((doomed, "destroyed"), (sleepy, "hibernated")):
        events = recorded_events(proxied_engine, handle)
        seqs = [event.data["seq"] for event in events if "seq" in event.data]
        # Every event the workflow numbered, once each, in its order.
        assert seqs == list(range(1, numbered[handle.id] + 1))
        assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
        assert events[-1].event_type == last
        assert all(row.destroyed_at is not None for row in instance_rows(proxied_engine, handle))
    kinds = [e.event_type for e in recorded_events(proxied_engine, sleepy)]
    assert kinds[-2:] == ["hibernating", "hibernated"]

    # The snapshot committed to the store is taken in by the database now that it is back.
    assert import_commits(proxied_engine, s3.store()) == 1
    row = index.get_snapshot(proxied_engine, snapshot_id)
    assert row is not None and row.status == "committed"
