"""A real worker (every activity) against the sim marketplace, a real S3 endpoint (rclone) and
a Temporal server, for hibernation tests; plus SSH into the sim machines as Dumont."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client

from core.contracts.workflow import MachineSnapshot
from core.settings import Settings
from core.ssh import SshIdentity, connect_machine, ensure_identity
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.fixtures.worker import running_worker


@dataclass
class Stack:
    client: Client
    engine: Engine
    settings: Settings
    identity: SshIdentity
    sim: SimHandle
    s3: S3Endpoint

    @property
    def task_queue(self) -> str:
        return self.settings.task_queue

    async def run(self, snapshot: MachineSnapshot, command: str) -> str:
        """Run a shell command on the machine's current instance as Dumont; its stdout."""
        instance = snapshot.instance
        assert instance is not None and instance.ssh_host and instance.ssh_port
        async with connect_machine(
            self.identity, instance.ssh_host, instance.ssh_port, instance.ssh_user
        ) as conn:
            result = await conn.run(command, check=True)
        return str(result.stdout)


def _settings(
    tmp_path: Path, engine: Engine, client: Client, sim: SimHandle, s3: S3Endpoint, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "worker",
        "database_url": str(engine.url),
        "temporal_address": client.service_client.config.target_host,
        "task_queue": f"hib-{uuid.uuid4().hex[:8]}",
        "vast_url": sim.url,
        "vast_api_key": sim.api_key,
        "boot_timeout_seconds": 120,
        "provider_poll_seconds": 0.5,
        "heartbeat_timeout_seconds": 5,
        "s3_endpoint": s3.endpoint,
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
        "s3_bucket": s3.bucket,
        "s3_region": "us-east-1",
        "snapshot_retry_seconds": 1,
        "snapshot_attempts": 2,
    }
    values.update(extra)
    return Settings(**values)


@asynccontextmanager
async def running_stack(
    tmp_path: Path,
    client: Client,
    engine: Engine,
    sim: SimHandle,
    s3: S3Endpoint,
    **settings_overrides: Any,
) -> AsyncIterator[Stack]:
    """A worker with every activity on its own task queue; `settings_overrides` change the
    defaults above (retry counts and delays)."""
    settings = _settings(tmp_path, engine, client, sim, s3, **settings_overrides)
    async with running_worker(
        client,
        settings,
        engine,
        max_heartbeat_throttle_interval=timedelta(milliseconds=500),
        default_heartbeat_throttle_interval=timedelta(milliseconds=500),
    ):
        identity = ensure_identity(settings.ssh_key_path)
        yield Stack(client, engine, settings, identity, sim, s3)
