"""The agent, installed over SSH on a sim machine, reporting to the real API (uvicorn) process:
the GPU load set on the machine is what the API stores."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from agent.config import AgentConfig
from agent.deploy import deploy_agent
from core.accounts import create_user
from core.agent_tokens import issue_agent_token
from core.db import make_engine, migrate, session_scope
from core.models import Machine, MetricSample
from tests.agent.helpers import eventually
from tests.agent.test_install import sim_machine
from tests.fixtures.sim import REPO_ROOT, SimHandle
from tests.sim.helpers import connect, new_key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ApiProcess:
    url: str
    engine: Engine


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[ApiProcess]:
    database_url = f"sqlite:///{tmp_path / 'api.db'}"
    engine = make_engine(database_url)
    migrate(engine)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("DUMONT_")}
    env.update(
        DUMONT_DATABASE_URL=database_url,
        DUMONT_DATA_DIR=str(tmp_path),
        # No Temporal: the API stays up and stores heartbeats; only its signals fail.
        DUMONT_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 - the child holds it
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        yield ApiProcess(url=url, engine=engine)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        engine.dispose()


def register_machine(engine: Engine, machine_id: str) -> str:
    """The machine's row, as the control plane has it before the agent's install; its token."""
    with session_scope(engine) as session:
        owner = create_user(session, f"user-{uuid.uuid4().hex[:8]}")
        session.add(
            Machine(
                id=machine_id,
                owner_id=owner.id,
                gpu_name="RTX 4090",
                image="pytorch/pytorch",
                disk_gb=20,
                status="running",
            )
        )
        session.flush()
        return issue_agent_token(session, machine_id)


def stored(engine: Engine, machine_id: str) -> list[MetricSample]:
    with session_scope(engine) as session:
        rows = session.exec(
            select(MetricSample)
            .where(MetricSample.machine_id == machine_id)
            .order_by(MetricSample.timestamp)  # type: ignore[arg-type]
        ).all()
        session.expunge_all()
        return list(rows)


def machine_row(engine: Engine, machine_id: str) -> Machine:
    with session_scope(engine) as session:
        machine = session.get(Machine, machine_id)
        assert machine is not None
        session.expunge(machine)
        return machine


async def test_the_gpu_load_of_a_sim_machine_arrives_in_the_api(
    sim: SimHandle, api_process: ApiProcess
) -> None:
    key = new_key()
    machine = await sim_machine(sim, key)
    gpus = len(json.loads(machine.layout.gpu_file.read_text())["gpus"])
    await sim.admin.set_gpu_load(machine.instance_id, 73.0, 5000)
    token = register_machine(api_process.engine, machine.machine_id)

    async with connect(machine.port, key) as conn:
        await deploy_agent(
            conn,
            AgentConfig(
                machine_id=machine.machine_id,
                api_url=api_process.url,
                token=token,
                interval_seconds=0.2,
                workspace="/workspace" if machine.namespace else str(machine.layout.workspace),
            ),
        )

    engine, machine_id = api_process.engine, machine.machine_id
    await eventually(lambda: len(stored(engine, machine_id)) >= 2)
    sample = stored(engine, machine_id)[-1]
    assert sample.gpu_utilization == 73.0
    assert sample.gpu_memory_used_mb == 5000 * gpus
    assert sample.active_users == 0
    assert sample.cpu_percent is not None and 0 <= sample.cpu_percent <= 100
    assert sample.disk_total_gb is not None and sample.disk_total_gb > 0

    # The load changes on the machine: the API's newest sample and the machine follow it.
    await sim.admin.set_gpu_load(machine.instance_id, 0.0, 0)
    await eventually(lambda: stored(engine, machine_id)[-1].gpu_utilization == 0.0)
    await eventually(lambda: machine_row(engine, machine_id).gpu_utilization == 0.0)
    row = machine_row(engine, machine_id)
    assert row.agent_version == "0.1.0"
    assert row.last_report_at is not None
