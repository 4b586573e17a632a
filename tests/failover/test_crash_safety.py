"""Crash safety of a failover: `python -m worker` killed with SIGKILL while the machine moves
back onto a new GPU (once that GPU is rented; while the standby's workspace is being restored
onto it), then started again. The machine ends running on exactly one GPU with exactly one
standby, and the workspace of the last sync is all there."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from core.contracts.activities import ActivityName
from core.contracts.standby import ProviderEvent
from core.contracts.states import InstanceStatus
from core.ssh import SshIdentity, connect_machine, ensure_identity
from tests.failover.stack import linked, live_instances, start_gpu_machine, until
from tests.fixtures.sim import SimHandle
from tests.hibernation.watch import running_activity
from tests.workflows.machines import machine_id
from tests.workflows.test_worker_crash import WorkerProcess
from workflows.client import MachineClient

pytestmark = pytest.mark.slow  # a crash matrix

# ~150 MB in 30 files, so that the restore onto the new GPU takes long enough to be caught.
WORKSPACE = (
    "mkdir -p /workspace/data && cd /workspace/data && "
    "for i in $(seq 1 30); do head -c 5000000 /dev/urandom > f$i.bin; done && "
    "echo 'step 900' > /workspace/progress.txt"
)
DESCRIBE = (
    "cd /workspace && find . -printf '%y %m %s %p\\n' | sort && "
    "find . -type f -print0 | sort -z | xargs -0 sha256sum"
)


async def run(identity: SshIdentity, instance: object, command: str) -> str:
    async with connect_machine(
        identity,
        instance.ssh_host,  # type: ignore[attr-defined]
        instance.ssh_port,  # type: ignore[attr-defined]
        instance.ssh_user,  # type: ignore[attr-defined]
    ) as conn:
        return str((await conn.run(command, check=True)).stdout)


@pytest.fixture
async def crash(
    dev_env: WorkflowEnvironment, sim: SimHandle, sqlite_engine: Engine, tmp_path: Path
) -> AsyncIterator[tuple[WorkerProcess, str, SshIdentity]]:
    task_queue = f"focrash-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "worker"
    env = {
        **os.environ,
        "DUMONT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DUMONT_TASK_QUEUE": task_queue,
        "DUMONT_DATABASE_URL": str(sqlite_engine.url),
        "DUMONT_DATA_DIR": str(data_dir),
        "DUMONT_VAST_URL": sim.url,
        "DUMONT_VAST_API_KEY": sim.api_key,
        "DUMONT_GCP_PROJECT": "failover-crash",
        "DUMONT_GCP_ENDPOINT": sim.gce_url,
        "DUMONT_GCP_CREDENTIALS": "anonymous",
        "DUMONT_GCP_SSH_PORT": str(sim.gce_ssh_port),
        "DUMONT_BOOT_TIMEOUT_SECONDS": "120",
        "DUMONT_PROVIDER_POLL_SECONDS": "0.5",
        "DUMONT_HEARTBEAT_TIMEOUT_SECONDS": "3",
        "DUMONT_AGENT_INTERVAL_SECONDS": "5",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    await worker.start()
    try:
        yield worker, task_queue, ensure_identity(data_dir / "ssh" / "id_ed25519")
    finally:
        await worker.stop()


@pytest.mark.parametrize(
    "killed_in", [ActivityName.WAIT_UNTIL_READY, ActivityName.RESTORE_FROM_STANDBY]
)
async def test_a_worker_killed_while_failing_back_leaves_one_gpu_one_standby_and_the_work(
    crash: tuple[WorkerProcess, str, SshIdentity],
    dev_env: WorkflowEnvironment,
    sim: SimHandle,
    sqlite_engine: Engine,
    killed_in: ActivityName,
) -> None:
    worker, task_queue, identity = crash
    handle = await start_gpu_machine(dev_env.client, sqlite_engine, task_queue)
    up = await until(handle, linked, "linked", seconds=180)
    assert up.instance is not None and up.standby.instance is not None
    await run(identity, up.instance, WORKSPACE)
    # The agent's sync carries it to the standby.
    for _ in range(240):
        # (an rsync in progress leaves temporary files that vanish under sha256sum)
        on_standby = await run(identity, up.standby.instance, f"({DESCRIBE}) 2>/dev/null || true")
        if "progress.txt" in on_standby and on_standby.count(".bin") >= 60:
            if "/." not in on_standby:  # no rsync temporary left: a sync completed
                break
        await asyncio.sleep(0.5)
    before = await run(identity, up.standby.instance, DESCRIBE)
    assert before == await run(identity, up.instance, DESCRIBE)

    await sim.admin.interrupt(int(up.instance.instance_id))
    await MachineClient(dev_env.client).provider_event(
        machine_id(handle),
        ProviderEvent(
            instance_id=up.instance.instance_id,
            status=InstanceStatus.STOPPED,
            at=datetime.now(UTC),
            interrupted=True,
        ),
    )
    for _ in range(600):
        if await running_activity(handle, killed_in) is not None:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"{killed_in} never ran")
    await worker.kill()
    await worker.start()

    lost = up.instance.instance_id
    back = await until(
        handle,
        lambda s: linked(s) and s.instance is not None and s.instance.instance_id != lost,
        "running on a new GPU",
        seconds=240,
    )
    assert back.instance is not None
    assert await run(identity, back.instance, DESCRIBE) == before  # nothing of the user's lost
    gpus, standbys = await live_instances(sim, machine_id(handle))
    assert gpus == [back.instance.instance_id] and len(standbys) == 1
