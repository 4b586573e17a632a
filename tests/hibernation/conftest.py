"""The crash stack the crash-safety tests share: `python -m worker` as its own process (so a
test can SIGKILL it) against the sim, a real S3 endpoint and the Temporal dev server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.ssh import SshIdentity, ensure_identity
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.workflows.machines import MachineHandle
from tests.workflows.test_worker_crash import WorkerProcess


@dataclass
class CrashStack:
    client: Client
    worker: WorkerProcess
    task_queue: str
    engine: Engine
    sim: SimHandle
    s3: S3Endpoint
    identity: SshIdentity

    async def kill_worker(self, handle: MachineHandle) -> None:
        """SIGKILL the worker: no graceful shutdown, activities in flight die with it."""
        await self.worker.kill()
        # The machine's next workflow task would wait 10 s on the dead worker's sticky queue
        # before the server hands it to another worker; ask for that at once (as a graceful
        # shutdown does) to keep the suite fast.
        await self.client.workflow_service.reset_sticky_task_queue(
            ResetStickyTaskQueueRequest(
                namespace=self.client.namespace,
                execution=WorkflowExecution(workflow_id=handle.id),
            )
        )


@pytest.fixture
async def crash_stack(
    dev_env: WorkflowEnvironment,
    sim: SimHandle,
    s3: S3Endpoint,
    sqlite_engine: Engine,
    tmp_path: Path,
) -> AsyncIterator[CrashStack]:
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "worker"
    env = {
        **os.environ,
        "DUMONT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DUMONT_TASK_QUEUE": task_queue,
        "DUMONT_DATABASE_URL": str(sqlite_engine.url),
        "DUMONT_DATA_DIR": str(data_dir),
        "DUMONT_VAST_URL": sim.url,
        "DUMONT_VAST_API_KEY": sim.api_key,
        "DUMONT_BOOT_TIMEOUT_SECONDS": "120",
        "DUMONT_PROVIDER_POLL_SECONDS": "0.5",
        # A killed worker's activities are retried by the next one after this long.
        "DUMONT_HEARTBEAT_TIMEOUT_SECONDS": "3",
        "DUMONT_SNAPSHOT_RETRY_SECONDS": "1",
        "DUMONT_S3_ENDPOINT": s3.endpoint,
        "DUMONT_S3_ACCESS_KEY": s3.access_key,
        "DUMONT_S3_SECRET_KEY": s3.secret_key,
        "DUMONT_S3_BUCKET": s3.bucket,
        "DUMONT_S3_REGION": "us-east-1",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    await worker.start()
    try:
        yield CrashStack(
            dev_env.client,
            worker,
            task_queue,
            sqlite_engine,
            sim,
            s3,
            # The worker made Dumont's key on its first start; the tests reach machines with it.
            ensure_identity(data_dir / "ssh" / "id_ed25519"),
        )
    finally:
        await worker.stop()
