"""The agent through the machine's life, for real: the worker installs it over SSH onto a fresh
machine of the local cloud, it reports to a real API, and when it dies (watchdog and all) the
offline report makes the workflow install it again."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from core.contracts.agent import AgentReport
from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from core.models import MetricSample
from core.settings import Settings
from core.ssh import SshIdentity, ensure_identity
from providers.registry import ProviderRegistry
from providers.vast import VastProvider
from tests.api.conftest import temporal_address
from tests.fixtures.sim import SimHandle
from tests.workflows.helpers import signals_processed
from tests.workflows.machines import (
    MachineHandle,
    create_machine,
    machine_id,
    recorded_events,
    until_state,
)
from worker import MAX_CONCURRENT_ACTIVITIES, build_worker
from workflows.machine import MachineWorkflow

T = TypeVar("T")


@asynccontextmanager
async def serving_api(settings: Settings) -> AsyncIterator[str]:
    """The real API on a free loopback port (the agent posts to it); yields its URL."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def agent_processes(machine_dir: str) -> dict[str, int]:
    """The machine's agent and watchdog processes: {"agent": pid, "watchdog": pid}."""
    found: dict[str, int] = {}
    marker = f"DUMONT_SANDBOX_DIR={Path(machine_dir).resolve()}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker not in environ:
            continue
        if "watchdog.sh" in cmdline:
            found["watchdog"] = int(entry)
        elif "-m agent" in cmdline and "--check" not in cmdline:
            found["agent"] = int(entry)
    return found


async def eventually(check: Callable[[], T | None], what: str, *, polls: int = 600) -> T:
    for _ in range(polls):
        result = check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def until_agent(handle: MachineHandle, check: Callable[[MachineSnapshot], bool]) -> None:
    for _ in range(600):
        snapshot = await handle.query(MachineWorkflow.state)
        if check(snapshot):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"agent never as expected: {snapshot.agent}")


def samples_of(engine: Engine, handle: MachineHandle) -> int:
    with Session(engine) as session:
        query = select(func.count()).where(MetricSample.machine_id == machine_id(handle))
        return session.exec(query).one()


@pytest.fixture
def identity(tmp_path: Path) -> SshIdentity:
    return ensure_identity(tmp_path / "ssh" / "id_ed25519")


@pytest.fixture
async def registry(sim: SimHandle) -> AsyncIterator[ProviderRegistry]:
    registry = ProviderRegistry({"vast": VastProvider(sim.url, sim.api_key)})
    yield registry
    await registry.aclose()


async def test_agent_installed_after_create_and_reinstalled_when_it_dies(
    dev_env: WorkflowEnvironment,
    sqlite_engine: Engine,
    sim: SimHandle,
    registry: ProviderRegistry,
    identity: SshIdentity,
    tmp_path: Path,
) -> None:
    engine = sqlite_engine
    settings = Settings(
        data_dir=tmp_path,
        database_url=str(engine.url),
        temporal_address=temporal_address(dev_env),
        task_queue=f"tq-{uuid.uuid4().hex[:8]}",
        boot_timeout_seconds=60,
        heartbeat_timeout_seconds=5,
        provider_poll_seconds=0.2,
        agent_interval_seconds=1,
    )
    async with serving_api(settings) as api_url:
        settings = settings.model_copy(update={"public_api_url": api_url})
        with ThreadPoolExecutor(MAX_CONCURRENT_ACTIVITIES) as executor:
            worker = build_worker(
                dev_env.client,
                settings,
                providers=registry,
                identity=identity,
                engine=engine,
                activity_executor=executor,
            )
            async with worker:
                handle = await create_machine(dev_env.client, engine, settings.task_queue)
                running = await until_state(handle, MachineState.RUNNING)
                assert running.reason is None
                assert running.agent.installed_at is not None
                assert running.agent.install_error is None
                assert running.instance is not None
                instance = await sim.admin.instance(int(running.instance.instance_id))
                machine_dir = instance["machine_dir"]

                # The agent runs on the machine under its watchdog, and its reports arrive:
                # stored, and the workflow told it is online.
                first = agent_processes(machine_dir)
                assert set(first) == {"agent", "watchdog"}
                await eventually(lambda: samples_of(engine, handle), "a report stored")
                await until_agent(handle, lambda s: s.agent.online is True)

                # Kill the agent and its watchdog: nothing brings it back by itself.
                os.kill(first["watchdog"], signal.SIGKILL)
                os.kill(first["agent"], signal.SIGKILL)
                await eventually(lambda: not agent_processes(machine_dir), "agent gone")
                await asyncio.sleep(2.5)  # longer than the watchdog's restart pause
                assert agent_processes(machine_dir) == {}

                # The fleet monitor's word that it went silent: the workflow re-installs it.
                offline = AgentReport(online=False, at=datetime.now(UTC))
                await handle.signal(MachineWorkflow.agent_report, offline)
                await until_agent(
                    handle,
                    lambda s: (
                        s.agent.reinstalls == 1
                        and s.agent.installed_at != running.agent.installed_at
                    ),
                )
                again = await eventually(lambda: agent_processes(machine_dir), "agent back")
                assert set(again) == {"agent", "watchdog"}
                assert again["agent"] != first["agent"]
                # The new agent (with its new token) reports, and the workflow hears it.
                before = samples_of(engine, handle)
                await eventually(lambda: samples_of(engine, handle) > before, "new reports")
                await until_agent(handle, lambda s: s.agent.online is True)
                # The same report again is stale, and changes nothing.
                await handle.signal(MachineWorkflow.agent_report, offline)
                await signals_processed(handle)
                still = await handle.query(MachineWorkflow.state)
                assert (still.agent.online, still.agent.reinstalls) == (True, 1)

                await handle.execute_update(MachineWorkflow.destroy, ActionInput())
                await handle.result()
    assert agent_processes(machine_dir) == {}
    installs = [e for e in recorded_events(engine, handle) if e.event_type == "agent_installed"]
    assert [(e.state, (e.reason or "").split(":")[0]) for e in installs] == [
        ("starting", "installed after create"),
        ("running", "re-installed"),
    ]
    assert "agent went offline" in (installs[1].reason or "")
