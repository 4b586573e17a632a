"""The failover stack: a real worker (every activity) against one sim serving both vast.ai (the
GPU machines) and Compute Engine (their CPU standbys), a Temporal server and SQLite; a user with
an SSH key of their own, and SSH into the machines as that user."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncssh
from sqlalchemy.engine import Engine
from temporalio.client import Client

from core.contracts.machine import InstanceInfo
from core.contracts.standby import StandbyConfig
from core.contracts.workflow import MachineSnapshot
from core.settings import Settings
from core.ssh import SshIdentity, connect_machine, ensure_identity
from tests.fixtures.sim import SimHandle
from tests.fixtures.worker import running_worker
from tests.sim.helpers import new_key, public
from tests.workflows.machines import MachineHandle, create_machine
from workflows.machine import MachineWorkflow

# The standby the tests make: the sim's cheapest spot e2 type, syncing every 5 s.
STANDBY = StandbyConfig(enabled=True, machine_type="e2-small", disk_gb=10, sync_interval_seconds=5)


@dataclass
class Stack:
    client: Client
    engine: Engine
    settings: Settings
    identity: SshIdentity
    sim: SimHandle
    user_key: asyncssh.SSHKey

    async def create(self, standby: StandbyConfig | None = STANDBY) -> MachineHandle:
        """A GPU machine as the API makes it, for a user with an SSH key of their own."""
        return await start_gpu_machine(
            self.client, self.engine, self.settings.task_queue, standby, public(self.user_key)
        )

    async def as_dumont(self, instance: InstanceInfo, command: str) -> str:
        assert instance.ssh_host and instance.ssh_port
        async with connect_machine(
            self.identity, instance.ssh_host, instance.ssh_port, instance.ssh_user
        ) as conn:
            return str((await conn.run(command, check=True)).stdout)

    async def as_user(self, instance: InstanceInfo, command: str) -> str:
        """What the user's own `ssh` (with their key) gets on the instance."""
        assert instance.ssh_host and instance.ssh_port
        async with asyncssh.connect(
            instance.ssh_host,
            instance.ssh_port,
            username=instance.ssh_user,
            client_keys=[self.user_key],
            known_hosts=None,
            agent_path=None,
            config=None,
        ) as conn:
            return str((await conn.run(command, check=True)).stdout)


async def start_gpu_machine(
    client: Client,
    engine: Engine,
    task_queue: str,
    standby: StandbyConfig | None = STANDBY,
    user_key: str | None = None,
) -> MachineHandle:
    """A GPU machine as the API makes it (tests/workflows/machines.py), with a standby."""
    return await create_machine(client, engine, task_queue, standby=standby, user_key=user_key)


async def live_instances(sim: SimHandle, machine_id: str) -> tuple[list[str], list[str]]:
    """The machine's live instances on each provider: (vast GPU ids, GCE standby names)."""
    prefix = f"dumont-{machine_id}-"
    gpus = [
        str(i["id"])
        for i in await sim.admin.instances()
        if str(i["label"] or "").startswith(prefix) and i["actual_status"] != "destroyed"
    ]
    standbys = [
        str(i["name"])
        for i in await sim.gce_admin.instances()
        if f"-{machine_id}-sb" in str(i["name"])
    ]
    return gpus, standbys


async def until(
    handle: MachineHandle, check: Callable[[MachineSnapshot], bool], what: str, seconds: float = 120
) -> MachineSnapshot:
    snapshot: MachineSnapshot | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        snapshot = await handle.query(MachineWorkflow.state)
        if check(snapshot) and not snapshot.outbox:
            return snapshot
        await asyncio.sleep(0.2)
    raise AssertionError(f"never {what}; last seen {snapshot}")


def linked(snapshot: MachineSnapshot) -> bool:
    st = snapshot.standby
    return (
        snapshot.state.is_up()
        and snapshot.instance is not None
        and st.instance is not None
        and st.linked_instance_id == snapshot.instance.instance_id
    )


def _settings(
    tmp_path: Path, engine: Engine, client: Client, sim: SimHandle, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "worker",
        "database_url": str(engine.url),
        "temporal_address": client.service_client.config.target_host,
        "task_queue": f"fo-{uuid.uuid4().hex[:8]}",
        "vast_url": sim.url,
        "vast_api_key": sim.api_key,
        "gcp_project": "failover",
        "gcp_endpoint": sim.gce_url,
        "gcp_credentials": "anonymous",
        "gcp_ssh_port": sim.gce_ssh_port,
        "boot_timeout_seconds": 120,
        "provider_poll_seconds": 0.5,
        "heartbeat_timeout_seconds": 5,
        "agent_interval_seconds": 5,
        "wake_offer_retry_seconds": 2,
    }
    values.update(extra)
    return Settings(**values)


@asynccontextmanager
async def running_stack(
    tmp_path: Path, client: Client, engine: Engine, sim: SimHandle, **overrides: Any
) -> AsyncIterator[Stack]:
    settings = _settings(tmp_path, engine, client, sim, **overrides)
    async with running_worker(
        client,
        settings,
        engine,
        max_heartbeat_throttle_interval=timedelta(milliseconds=500),
        default_heartbeat_throttle_interval=timedelta(milliseconds=500),
    ):
        yield Stack(
            client, engine, settings, ensure_identity(settings.ssh_key_path), sim, new_key()
        )
