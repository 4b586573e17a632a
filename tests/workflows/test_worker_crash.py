"""Crash safety: `python -m worker` killed with SIGKILL mid-boot and mid-destroy, then started
again, finishes the job without leaving a second (or any) instance billing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from tests.fixtures.sim import SimHandle
from tests.workflows.machines import (
    create_machine,
    instance_rows,
    live_instances,
    projection,
    recorded_states,
    until_projection,
    until_state,
)
from workflows.machine import MachineWorkflow

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = "worker polling"
S = MachineState


class WorkerProcess:
    """`python -m worker` as a separate process, configured only through DUMONT_* variables."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = env
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        offset = self._log_path.stat().st_size if self._log_path.exists() else 0
        with open(self._log_path, "ab") as log:  # noqa: ASYNC230 - a local log file for the child
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "worker", cwd=REPO_ROOT, env=self._env, stdout=log, stderr=log
            )
        for _ in range(600):
            if READY in self._log_path.read_text()[offset:]:
                return
            if self._process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker did not start:\n{self._log_path.read_text()[-3000:]}")

    async def kill(self) -> None:
        """SIGKILL: no graceful shutdown, activities in flight die with it."""
        assert self._process is not None
        self._process.kill()
        await self._process.wait()

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self._process.wait(), 30)


@pytest.fixture
async def worker_process(
    dev_env: WorkflowEnvironment, sim: SimHandle, sqlite_engine: Engine, tmp_path: Path
) -> AsyncIterator[tuple[WorkerProcess, str]]:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DUMONT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DUMONT_TASK_QUEUE": task_queue,
        "DUMONT_DATABASE_URL": str(sqlite_engine.url),
        "DUMONT_DATA_DIR": str(tmp_path / "worker"),
        "DUMONT_VAST_URL": sim.url,
        "DUMONT_VAST_API_KEY": sim.api_key,
        "DUMONT_BOOT_TIMEOUT_SECONDS": "120",
        # A killed worker's activities are retried elsewhere after this long.
        "DUMONT_HEARTBEAT_TIMEOUT_SECONDS": "3",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    await worker.start()
    try:
        yield worker, task_queue
    finally:
        await worker.stop()


@pytest.mark.slow  # a crash matrix: scripts/test.sh --slow
async def test_worker_killed_while_machine_starts(
    dev_env: WorkflowEnvironment,
    sim: SimHandle,
    sqlite_engine: Engine,
    worker_process: tuple[WorkerProcess, str],
) -> None:
    worker, task_queue = worker_process
    await sim.admin.set_boot_delay(4)
    handle = await create_machine(dev_env.client, sqlite_engine, task_queue)
    for _ in range(300):
        if await live_instances(sim, handle):
            break
        await asyncio.sleep(0.05)
    assert await live_instances(sim, handle), "no instance was created"

    await worker.kill()
    await worker.start()
    running = await until_state(handle, S.RUNNING)

    (instance,) = await live_instances(sim, handle)
    assert running.instance is not None and str(instance["id"]) == running.instance.instance_id
    ever_created = [i for i in await sim.admin.instances() if i["label"] == instance["label"]]
    assert len(ever_created) == 1  # the retried create adopted the instance, none was added
    assert running.attempt == 1
    await until_projection(sqlite_engine, handle, "running")
    assert [r.instance_id for r in instance_rows(sqlite_engine, handle)] == [str(instance["id"])]
    assert recorded_states(sqlite_engine, handle) == ["starting", "running"]


@pytest.mark.slow  # a crash matrix: scripts/test.sh --slow
async def test_worker_killed_while_machine_is_destroyed(
    dev_env: WorkflowEnvironment,
    sim: SimHandle,
    sqlite_engine: Engine,
    worker_process: tuple[WorkerProcess, str],
) -> None:
    worker, task_queue = worker_process
    handle = await create_machine(dev_env.client, sqlite_engine, task_queue)
    await until_state(handle, S.RUNNING)

    await sim.admin.set_latency(1.0)  # every provider call now takes a second
    update = await handle.start_update(
        MachineWorkflow.destroy, ActionInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    await until_state(handle, S.DESTROYING)
    await worker.kill()
    await sim.admin.set_latency(0)
    await worker.start()

    assert (await update.result()).state is S.DESTROYED
    assert (await handle.result()).state is S.DESTROYED
    assert await live_instances(sim, handle) == []
    row = projection(sqlite_engine, handle)
    assert (row.status, row.instance_id) == ("destroyed", None)
    assert all(r.destroyed_at is not None for r in instance_rows(sqlite_engine, handle))
    assert recorded_states(sqlite_engine, handle)[-2:] == ["destroying", "destroyed"]


async def test_worker_waits_for_temporal_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DUMONT_TEMPORAL_ADDRESS": "127.0.0.1:1",  # nothing listens there
        "DUMONT_DATA_DIR": str(tmp_path),
        "DUMONT_VAST_API_KEY": "unused",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "ab") as log:  # noqa: ASYNC230 - a local log file for the child
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )
    try:
        for _ in range(600):
            if "127.0.0.1:1 is not reachable" in log_path.read_text():
                break
            await asyncio.sleep(0.05)
        assert "retrying in 2 s" in log_path.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    assert (tmp_path / "ssh" / "id_ed25519").exists()  # Dumont's identity, made on first start
