"""The real worker, real activities and the local cloud: a machine's whole life."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from core.settings import Settings
from core.ssh import SshIdentity, ensure_identity
from providers.registry import ProviderRegistry
from providers.vast import VastProvider
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
from worker import MAX_CONCURRENT_ACTIVITIES, build_worker
from workflows.machine import MachineWorkflow

S = MachineState


@pytest.fixture
def identity(tmp_path: Path) -> SshIdentity:
    return ensure_identity(tmp_path / "ssh" / "id_ed25519")


@pytest.fixture
async def registry(sim: SimHandle) -> AsyncIterator[ProviderRegistry]:
    registry = ProviderRegistry({"vast": VastProvider(sim.url, sim.api_key)})
    yield registry
    await registry.aclose()


async def test_machine_lifecycle_on_the_local_cloud(
    dev_env: WorkflowEnvironment,
    engine: Engine,
    sim: SimHandle,
    registry: ProviderRegistry,
    identity: SshIdentity,
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        task_queue=f"tq-{uuid.uuid4().hex[:8]}",
        boot_timeout_seconds=60,
        heartbeat_timeout_seconds=5,
        provider_poll_seconds=0.2,
    )
    client = dev_env.client
    with ThreadPoolExecutor(MAX_CONCURRENT_ACTIVITIES) as executor:
        worker = build_worker(
            client,
            settings,
            providers=registry,
            identity=identity,
            engine=engine,
            activity_executor=executor,
        )
        async with worker:
            handle = await create_machine(client, engine, settings.task_queue)
            running = await until_state(handle, S.RUNNING)
            assert running.instance is not None
            (instance,) = await live_instances(sim, handle)
            assert str(instance["id"]) == running.instance.instance_id
            row = await until_projection(engine, handle, "running")
            assert row.instance_id == running.instance.instance_id
            assert row.ssh_host and row.ssh_port
            # The machine answers Dumont's key where the projection says it is.
            async with asyncssh.connect(
                row.ssh_host,
                row.ssh_port,
                username="root",
                client_keys=[identity.load()],
                known_hosts=None,
                agent_path=None,
                config=None,
            ) as conn:
                assert (await conn.run("echo up", check=True)).stdout == "up\n"

            stopped = await handle.execute_update(MachineWorkflow.stop, ActionInput())
            assert stopped.state is S.STOPPED
            (instance,) = await live_instances(sim, handle)
            assert instance["actual_status"] == "stopped"
            assert projection(engine, handle).status == "stopped"

            started = await handle.execute_update(MachineWorkflow.start, ActionInput())
            assert (started.state, started.instance_id) == (S.RUNNING, running.instance.instance_id)
            restarted = await handle.execute_update(MachineWorkflow.restart, ActionInput())
            assert restarted.state is S.RUNNING

            destroyed = await handle.execute_update(MachineWorkflow.destroy, ActionInput())
            assert destroyed.state is S.DESTROYED
            assert (await handle.result()).state is S.DESTROYED

    assert await live_instances(sim, handle) == []
    assert recorded_states(engine, handle) == [
        "starting", "running", "stopping", "stopped", "starting", "running",
        "restarting", "running", "destroying", "destroyed",
    ]  # fmt: skip
    row = projection(engine, handle)
    assert (row.status, row.instance_id, row.ssh_host) == ("destroyed", None, None)
    (record,) = instance_rows(engine, handle)
    assert record.instance_id == running.instance.instance_id
    assert record.destroyed_at is not None
