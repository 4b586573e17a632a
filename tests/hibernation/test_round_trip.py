"""Hibernate → wake through the real pieces: the engine on a sim machine over SSH, an S3
endpoint, the marketplace. The workspace comes back byte for byte on a new instance; a second
hibernate after a small change uploads only what changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from core.contracts.hibernation import ConfigureInput, HibernateInput, WakeInput
from core.contracts.states import MachineState
from core.snapshots import index
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.hibernation.stack import Stack, running_stack
from tests.workflows.machines import create_machine, live_instances, recorded_events, until_state
from workflows.machine import MachineWorkflow

S = MachineState
BIG_MIB = 300

# Random small files, a big one, a symlink, empty dirs, odd permissions.
MAKE_WORKSPACE = f"""
set -e
cd /workspace
mkdir -p data/empty deep/a/b/c/empty models
for i in $(seq 1 200); do head -c $((RANDOM * 3)) /dev/urandom > data/f$i.bin; done
for i in $(seq 1 50); do seq 1 $((RANDOM)) > deep/a/t$i.txt; done
head -c {BIG_MIB}M /dev/urandom > models/big.ckpt
ln -s models/big.ckpt latest.ckpt
ln -s /nonexistent dangling
chmod 600 data/f1.bin; chmod 751 deep/a; chmod 4755 data/f2.bin; chmod 700 data/empty
touch -d '2001-02-03 04:05:06' data/f3.bin
"""

# What a user would compare: every path with its type, mode, size, link target and content hash.
DESCRIBE = r"""
cd /workspace
find . -printf '%y %m %s %l %p\n' | sort
find . -type f -print0 | sort -z | xargs -0 sha256sum
"""


@pytest.fixture
async def stack(
    tmp_path: Path,
    dev_env: WorkflowEnvironment,
    sim: SimHandle,
    s3: S3Endpoint,
    sqlite_engine: Engine,
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, dev_env.client, sqlite_engine, sim, s3) as stack:
        yield stack


async def test_hibernate_then_wake_restores_every_byte(stack: Stack) -> None:
    handle = await create_machine(stack.client, stack.engine, stack.task_queue)
    running = await until_state(handle, S.RUNNING)
    await stack.run(running, MAKE_WORKSPACE)
    before = await stack.run(running, DESCRIBE)
    assert "big.ckpt" in before and "dangling" in before

    hibernated = await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
    assert hibernated.state is S.HIBERNATED and hibernated.instance_destroyed
    assert await live_instances(stack.sim, handle) == []  # nothing left billing
    first = index.get_snapshot(stack.engine, hibernated.snapshot_id)
    assert first is not None and first.status == "committed"
    assert first.logical_bytes > BIG_MIB * 2**20

    woke = await handle.execute_update(MachineWorkflow.wake, WakeInput())
    assert woke.state is S.RUNNING
    assert woke.instance.instance_id != running.instance.instance_id  # type: ignore[union-attr]
    awake = await handle.query(MachineWorkflow.state)
    assert await stack.run(awake, DESCRIBE) == before

    # 1 %: 3 MiB of the big file rewritten in place, one small file replaced.
    await stack.run(
        awake,
        "cd /workspace && head -c 3M /dev/urandom | "
        "dd of=models/big.ckpt bs=1M seek=100 conv=notrunc status=none && "
        "head -c 20000 /dev/urandom > data/f10.bin",
    )
    second = await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
    row = index.get_snapshot(stack.engine, second.snapshot_id)
    assert row is not None and row.status == "committed"
    assert row.uploaded_bytes <= 0.015 * row.logical_bytes + 8 * 2**20
    assert row.uploaded_bytes >= 3 * 2**20 * 0.9  # the change itself went up

    kinds = [e.event_type for e in recorded_events(stack.engine, handle)]
    for expected in ("hibernating", "hibernated", "waking", "restored", "woke"):
        assert expected in kinds
    assert kinds.count("hibernated") == 2


async def test_pre_hibernate_hook_runs_on_the_machine_before_the_snapshot(stack: Stack) -> None:
    handle = await create_machine(stack.client, stack.engine, stack.task_queue)
    running = await until_state(handle, S.RUNNING)
    # A hook that fails: the hibernate stops, the machine keeps running, the event says why.
    await handle.execute_update(
        MachineWorkflow.configure,
        ConfigureInput(pre_hibernate_command="echo 'GPU still busy' >&2; exit 3"),
    )
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
    assert "exit status 3: GPU still busy" in str(failed.value.cause)
    assert (await handle.query(MachineWorkflow.state)).state is S.RUNNING
    assert len(await live_instances(stack.sim, handle)) == 1

    # A hook that saves a checkpoint: what it wrote is in the snapshot the wake restores.
    await handle.execute_update(
        MachineWorkflow.configure,
        ConfigureInput(pre_hibernate_command="date +%s > checkpoint.txt && echo saved"),
    )
    await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
    await handle.execute_update(MachineWorkflow.wake, WakeInput())
    awake = await handle.query(MachineWorkflow.state)
    assert (await stack.run(awake, "cat /workspace/checkpoint.txt")).strip().isdigit()
    events = recorded_events(stack.engine, handle)
    reasons = {e.event_type: e.reason for e in events}
    assert reasons["pre_hibernate_failed"] is not None
    assert "GPU still busy" in reasons["pre_hibernate_failed"]
    assert reasons["pre_hibernate_done"] == "saved"
    assert running.instance is not None
