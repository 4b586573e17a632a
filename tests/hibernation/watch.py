"""Watching a hibernate or a wake from outside, as crash and failure tests need: which activity
runs and what it last reported, what the store and the machines hold, and the promises every
hibernate and wake must keep (nothing destroyed before its snapshot committed, nothing left
billing, the workspace back byte for byte)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client
from temporalio.converter import DataConverter

from core.contracts.activities import ActivityName
from core.contracts.workflow import MachineSnapshot
from core.models import Snapshot
from core.snapshots import index
from core.ssh import SshIdentity, connect_machine
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.workflows.machines import (
    MachineHandle,
    instance_rows,
    live_instances,
    machine_id,
    recorded_events,
)

T = TypeVar("T")

WORKSPACE_MIB = 256

# A workspace worth crashing in the middle of: a big checkpoint of random bytes (nothing to
# compress or deduplicate), small files, a symlink, odd modes.
MAKE_WORKSPACE = f"""
set -e
cd /workspace
mkdir -p models data/empty
head -c {WORKSPACE_MIB}M /dev/urandom > models/big.ckpt
for i in $(seq 1 20); do head -c $((RANDOM * 3)) /dev/urandom > data/f$i.bin; done
ln -s models/big.ckpt latest.ckpt
chmod 600 data/f1.bin
"""

# What a user would compare: every path with its type, mode, size, link target and content hash
# (a leftover restore staging directory would show up here too).
DESCRIBE = r"""
cd /workspace
find . -printf '%y %m %s %l %p\n' | sort
find . -type f -print0 | sort -z | xargs -0 sha256sum
"""


async def until(check: Callable[[], Awaitable[T | None]], what: str, *, polls: int = 1500) -> T:
    """Poll `check` every 20 ms until it gives something."""
    for _ in range(polls):
        found = await check()
        if found is not None:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"never saw {what}")


async def run_on(identity: SshIdentity, snapshot: MachineSnapshot, command: str) -> str:
    """A shell command on the machine's current instance, as Dumont; its stdout."""
    instance = snapshot.instance
    assert instance is not None and instance.ssh_host and instance.ssh_port
    async with connect_machine(
        identity, instance.ssh_host, instance.ssh_port, instance.ssh_user
    ) as conn:
        result = await conn.run(command, check=True)
    return str(result.stdout)


# --- the workflow's activities --------------------------------------------------------------


async def running_activity(handle: MachineHandle, name: ActivityName) -> PendingActivityInfo | None:
    """The activity `name` while a worker runs it (started, not yet finished), else None."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if (
            pending.activity_type.name == name
            and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        ):
            return pending
    return None


def heartbeat(pending: PendingActivityInfo) -> Any:
    """The last heartbeat details the server holds for a pending activity (None before one)."""
    payloads = pending.heartbeat_details.payloads
    if not payloads:
        return None
    return DataConverter.default.payload_converter.from_payloads(payloads)[0]


async def _history(client: Client, handle: MachineHandle) -> list[list[HistoryEvent]]:
    """The events of every run of the machine's workflow (it continues as new), oldest first."""
    runs: list[list[HistoryEvent]] = []
    run_id: str | None = None
    while True:
        run = client.get_workflow_handle(handle.id, run_id=run_id)
        events = [e async for e in run.fetch_history_events()]
        runs.insert(0, events)
        started = events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return runs
        run_id = started.continued_execution_run_id


async def activities_scheduled(client: Client, handle: MachineHandle, name: ActivityName) -> int:
    """How many times the workflow called activity `name` (retries of one call not counted)."""
    count = 0
    for run in await _history(client, handle):
        for event in run:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                count += attributes.activity_type.name == name
    return count


async def last_attempt(client: Client, handle: MachineHandle, name: ActivityName) -> int:
    """Which attempt the last call of activity `name` ended on (1: no retry)."""
    attempt = 0
    for run in await _history(client, handle):
        scheduled: set[int] = set()  # event ids, numbered per run
        for event in run:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                if event.activity_task_scheduled_event_attributes.activity_type.name == name:
                    scheduled.add(event.event_id)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                if started.scheduled_event_id in scheduled:
                    attempt = started.attempt
    return attempt


# --- what the store, the database and the sim hold ------------------------------------------


def machine_snapshots(engine: Engine, handle: MachineHandle) -> list[Snapshot]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Snapshot)
                .where(Snapshot.machine_id == machine_id(handle))
                .order_by(col(Snapshot.created_at))
            ).all()
        )


def stored_packs(s3: S3Endpoint) -> list[Path]:
    """Pack objects in the S3 endpoint's directory, complete or still arriving."""
    return [p for p in (s3.root / s3.bucket / "packs").rglob("*") if p.is_file()]


def staged_bytes(workspace: Path) -> int:
    """Bytes a restore has written so far into its staging directory inside `workspace`
    (its files are created at full length, sparse, so allocated blocks are what counts)."""
    total = 0
    for staging in workspace.glob(".dumont-restore-*"):
        for directory, _, files in os.walk(staging):
            for name in files:
                try:
                    total += os.lstat(os.path.join(directory, name)).st_blocks * 512
                except FileNotFoundError:
                    pass
    return total


def event_kinds(engine: Engine, handle: MachineHandle) -> list[str]:
    return [e.event_type for e in recorded_events(engine, handle)]


# --- the promises ----------------------------------------------------------------------------


async def assert_hibernated_safely(
    engine: Engine, sim: SimHandle, handle: MachineHandle, snapshot_id: str, instance_id: str
) -> None:
    """The hibernate ended as it must: the snapshot committed no later than the instance was
    destroyed, and nothing of the machine left at the provider or billing in the records."""
    assert await live_instances(sim, handle) == []
    row = index.get_snapshot(engine, snapshot_id)
    assert row is not None and row.status == "committed", row
    assert row.committed_at is not None
    rows = {r.instance_id: r for r in instance_rows(engine, handle)}
    destroyed = rows[instance_id]
    assert destroyed.destroyed_at is not None, f"instance {instance_id} never recorded destroyed"
    assert row.committed_at <= destroyed.destroyed_at, "destroyed before its snapshot committed"
    assert [r.instance_id for r in rows.values() if r.destroyed_at is None] == []


async def assert_only_instance(
    engine: Engine, sim: SimHandle, handle: MachineHandle, instance_id: str
) -> None:
    """Exactly one instance of the machine lives, the one it runs on; every other one it ever
    rented is destroyed, at the provider and in the records."""
    assert [str(i["id"]) for i in await live_instances(sim, handle)] == [instance_id]
    alive = [r.instance_id for r in instance_rows(engine, handle) if r.destroyed_at is None]
    assert alive == [instance_id]
