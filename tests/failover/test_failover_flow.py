"""GPU -> CPU failover end to end: real sim processes for vast.ai (the GPU) and Compute Engine
(the standby), real SSH and rsync (the agent's own sync loop on the GPU machine), a real
Temporal server and worker. The seed's flows: creating a GPU creates its standby; a GPU lost to
a spot interruption leaves the machine on the standby with every file of the last completed
sync, then on a new GPU with the same workspace, syncing again; a user destroy removes the
standby, a failover never does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from core.contracts.machine import ActionInput, InstanceInfo
from core.contracts.standby import MigrateInput, ProviderEvent, Side
from core.contracts.states import InstanceStatus, MachineState
from tests.failover.stack import Stack, linked, live_instances, running_stack, until
from tests.fixtures.sim import SimHandle
from tests.workflows.machines import machine_id, recorded_events
from workflows.client import MachineClient
from workflows.machine import MachineWorkflow

S = MachineState
# The user's workload: a numbered file every second, holding the second it was written.
WRITER = (
    "mkdir -p /workspace/n; cd /workspace/n; "
    "nohup setsid sh -c 'i=0; while true; do i=$((i+1)); date +%s > $i; sleep 1; done' "
    ">/dev/null 2>&1 </dev/null &"
)
# Every path with its type, mode, size, link target, and every file's hash.
DESCRIBE = (
    "cd /workspace && find . -printf '%y %m %s %l %p\\n' | sort && "
    "find . -type f -print0 | sort -z | xargs -0 sha256sum"
)
SYNC_STATUS = (
    "cat /opt/dumont-agent/sync-status.json 2>/dev/null || cat ~/.dumont-agent/sync-status.json"
)


@pytest.fixture
async def stack(
    tmp_path: Path, dev_env: WorkflowEnvironment, sim: SimHandle, sqlite_engine: Engine
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, dev_env.client, sqlite_engine, sim) as stack:
        yield stack


async def sync_status(stack: Stack, gpu: InstanceInfo) -> dict[str, object]:
    return dict(json.loads(await stack.as_dumont(gpu, SYNC_STATUS)))


async def synced_after(stack: Stack, gpu: InstanceInfo, after: datetime) -> dict[str, object]:
    """The GPU agent's sync status once a sync that began after `after` completed."""
    for _ in range(300):
        try:
            status = await sync_status(stack, gpu)
        except Exception:  # noqa: BLE001 - no status file yet
            status = {}
        done = status.get("last_success_at")
        seconds = float(status.get("last_duration_seconds") or 0)  # type: ignore[arg-type]
        if (
            isinstance(done, str)
            and datetime.fromisoformat(done).timestamp() - seconds > after.timestamp()
        ):
            return status
        await asyncio.sleep(0.5)
    raise AssertionError(f"no sync completed after {after}: {status}")


def numbered(listing: str) -> dict[int, int]:
    """`name content` lines of /workspace/n -> {number: second written}."""
    found = {}
    for line in listing.split("\n"):
        if line.strip():
            name, written = line.split()
            found[int(name)] = int(written)
    return found


LIST_NUMBERED = 'cd /workspace/n && for f in *; do echo "$f $(cat $f)"; done'


async def test_a_spot_killed_gpu_fails_over_to_the_standby_and_back_losing_no_synced_work(
    stack: Stack,
) -> None:
    handle = await stack.create()
    up = await until(handle, linked, "running with its standby linked")
    gpu, standby = up.instance, up.standby.instance
    assert gpu is not None and standby is not None
    assert standby.provider == "gcp" and standby.ssh_user != "root"
    await stack.as_dumont(gpu, WRITER)
    started = datetime.now(UTC)
    await synced_after(stack, gpu, started)
    status = await synced_after(stack, gpu, datetime.now(UTC))  # a second one: files moved on
    last_sync = datetime.fromisoformat(str(status["last_success_at"]))
    seconds = float(status["last_duration_seconds"])  # type: ignore[arg-type]

    await stack.sim.admin.interrupt(int(gpu.instance_id))  # the spot host takes its GPU back
    killed = datetime.now(UTC)
    await MachineClient(stack.client).provider_event(
        machine_id(handle),
        ProviderEvent(
            instance_id=gpu.instance_id, status=InstanceStatus.STOPPED, at=killed, interrupted=True
        ),
    )
    back = await until(
        handle,
        lambda s: (
            linked(s) and s.instance is not None and s.instance.instance_id != gpu.instance_id
        ),
        "running on a new GPU",
    )
    assert back.state is S.RUNNING and back.standby.side is Side.GPU

    # The standby held every file of the last completed sync, reached with the user's own key.
    on_standby = numbered(await stack.as_user(standby, LIST_NUMBERED))
    assert on_standby, "the standby holds the workload's files"
    assert sorted(on_standby) == list(range(1, max(on_standby) + 1))  # no gap
    begun = last_sync.timestamp() - seconds
    written_before = [n for n, t in on_standby.items() if t < begun - 1]
    assert written_before and max(on_standby) >= max(written_before)
    assert max(on_standby.values()) >= int(begun) - 1  # RPO: at most one sync behind
    # The new GPU has the standby's workspace, byte for byte; the sync points at it again.
    assert back.instance is not None
    assert await stack.as_dumont(back.instance, DESCRIBE) == await stack.as_dumont(
        standby, DESCRIBE
    )
    await synced_after(stack, back.instance, datetime.now(UTC))
    events = recorded_events(stack.engine, handle)
    kinds = [e.event_type for e in events]
    for kind in ("standby_created", "standby_linked", "gpu_lost", "on_standby", "back_on_gpu"):
        assert kind in kinds
    # While on standby, the machine's ssh pointed at the standby.
    moved = next(e for e in events if e.event_type == "on_standby")
    assert moved.data["provider"] == "gcp" and moved.data["instance_id"] == standby.instance_id
    gpus, standbys = await live_instances(stack.sim, machine_id(handle))
    assert gpus == [back.instance.instance_id]  # the lost GPU bills no more
    assert len(standbys) == 1  # the failover kept the standby

    await handle.execute_update(MachineWorkflow.destroy, ActionInput())
    assert await live_instances(stack.sim, machine_id(handle)) == (
        [],
        [],
    )  # a user destroy removes both


async def test_migrate_to_the_cpu_and_back_keeps_the_workspace(stack: Stack) -> None:
    handle = await stack.create()
    up = await until(handle, linked, "running with its standby linked")
    assert up.instance is not None and up.standby.instance is not None
    await stack.as_dumont(
        up.instance,
        "mkdir -p /workspace/models && head -c 3000000 /dev/urandom > /workspace/models/w.bin "
        "&& ln -sf models/w.bin /workspace/latest && chmod 640 /workspace/models/w.bin",
    )
    before = await stack.as_dumont(up.instance, DESCRIBE)
    moved = await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.CPU))
    assert moved.state is S.STANDBY and moved.instance is not None
    assert await stack.as_user(moved.instance, DESCRIBE) == before  # the final sync took it all
    gpus, standbys = await live_instances(stack.sim, machine_id(handle))
    assert gpus == [] and len(standbys) == 1
    back = await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.GPU))
    assert back.state is S.RUNNING and back.instance is not None
    assert await stack.as_dumont(back.instance, DESCRIBE) == before
    await handle.execute_update(MachineWorkflow.destroy, ActionInput())
