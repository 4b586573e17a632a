"""Helpers for CLI tests: running `dumont` in-process, free ports, and a real API server."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from core.accounts import create_user, issue_token
from core.agent_tokens import issue_agent_token
from core.db import make_engine, migrate, session_scope
from core.models import Machine
from core.settings import Settings
from dumont.cli import app
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.fixtures.worker import running_worker

REPO_ROOT = Path(__file__).resolve().parents[2]
# Variables that would leak the developer's own setup into a test.
CLEARED_ENV = (
    "DUMONT_API_URL", "DUMONT_TOKEN", "DUMONT_DATA_DIR", "DUMONT_DATABASE_URL",
    "DUMONT_API_PORT", "DUMONT_TEMPORAL_PORT", "DUMONT_TEMPORAL_UI_PORT", "DUMONT_S3_PORT",
    "DUMONT_TEMPORAL_HTTP_PORT", "DUMONT_TEMPORAL_METRICS_PORT", "DUMONT_SIM_PORT",
    "TEMPORAL_ADDRESS", "DUMONT_TEMPORAL_ADDRESS", "VAST_URL", "VAST_API_KEY",
    "DUMONT_VAST_URL", "DUMONT_VAST_API_KEY", "DUMONT_SIM_ADMIN_TOKEN",
)  # fmt: skip


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port below the kernel's ephemeral range: a port from that range can be taken by
    any outgoing connection (a readiness probe, say) before the service it was meant for binds."""
    for _ in range(200):
        port = random.randrange(10000, _ephemeral_low())
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def dumont(
    *args: str, env: Mapping[str, str | None] | None = None, input: str | None = None
) -> Result:
    """Run the CLI in-process with only the given settings in the environment."""
    full_env: dict[str, str | None] = dict.fromkeys(CLEARED_ENV)
    full_env["COLUMNS"] = "200"  # wide enough that tables never fold a value
    full_env.update(env or {})
    return CliRunner().invoke(app, list(args), env=full_env, input=input)


@dataclass
class ApiServer:
    url: str
    database_url: str


@dataclass
class ApiUser:
    """A user of its own on the shared server, so tests never see each other's rows."""

    url: str
    token: str
    user_id: str
    database_url: str

    def env(self, **extra: str | None) -> dict[str, str | None]:
        return {"DUMONT_API_URL": self.url, "DUMONT_TOKEN": self.token, **extra}


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


@pytest.fixture(scope="session")  # one for all CLI tests: each test has a user of its own
def api_server(
    tmp_path_factory: pytest.TempPathFactory, dev_env: WorkflowEnvironment
) -> Iterator[ApiServer]:
    """The real API (uvicorn) on its own SQLite and the Temporal dev server, with no worker and
    no marketplace: what needs neither works, machines are created but do not move."""
    data_dir = tmp_path_factory.mktemp("api")
    database_url = f"sqlite:///{data_dir / 'api.db'}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(
        DUMONT_DATABASE_URL=database_url,
        DUMONT_DATA_DIR=str(data_dir),
        DUMONT_TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        DUMONT_TASK_QUEUE=f"cli-test-{port}",
        DUMONT_VAST_URL=f"http://127.0.0.1:{free_port()}",
        DUMONT_VAST_API_KEY="unused",
        DUMONT_INGEST_WAIT_FOR_COMMIT="true",  # a posted report is readable once answered
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", process)
        yield ApiServer(url=url, database_url=database_url)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def api_user(api_server: ApiServer) -> ApiUser:
    engine = make_engine(api_server.database_url)
    with session_scope(engine) as session:
        user_id = create_user(session, f"user-{uuid.uuid4().hex[:8]}").id
        token = issue_token(session, user_id)
    engine.dispose()
    return ApiUser(
        url=api_server.url, token=token, user_id=user_id, database_url=api_server.database_url
    )


def add_machine(user: ApiUser, **fields: Any) -> str:
    """A machine row of the user's, as the machine workflow would have left it (this API has
    no worker); returns its id."""
    values: dict[str, Any] = {
        "id": f"vast_{uuid.uuid4().hex[:12]}",
        "owner_id": user.user_id,
        "gpu_name": "RTX 4090",
        "image": "pytorch/pytorch",
        "disk_gb": 20,
        "status": "running",
    }
    values.update(fields)
    engine = make_engine(user.database_url)
    with session_scope(engine) as session:
        session.add(Machine(**values))
    engine.dispose()
    return str(values["id"])


def agent_report(machine_id: str, at: datetime, gpu: float) -> dict[str, Any]:
    """A full agent report (agent/PROTOCOL.md): the GPU at `gpu` %, the rest steady."""
    return {
        "instance_id": machine_id,
        "hostname": "c.1",
        "timestamp": at.isoformat(),
        "agent_version": "0.1.0",
        "interval_seconds": 30,
        "gpu_metrics": {
            "utilization_percent": gpu,
            "memory_used_mb": 18432,
            "memory_total_mb": 24576,
        },
        "cpu_percent": 40.0,
        "memory_used_mb": 20480,
        "memory_total_mb": 65536,
        "disk_used_gb": 12.0,
        "disk_total_gb": 100.0,
        "net_rx_bytes_per_s": 2048.0,
        "net_tx_bytes_per_s": 1024.0,
    }


def post_reports(user: ApiUser, machine_id: str, reports: list[dict[str, Any]]) -> None:
    """Post reports through the real ingest route, as the machine's agent would."""
    engine = make_engine(user.database_url)
    with session_scope(engine) as session:
        agent_token = issue_agent_token(session, machine_id)
    engine.dispose()
    response = httpx.post(
        f"{user.url}/api/agent/status",
        json={"samples": reports},
        headers={"Authorization": f"Bearer {agent_token}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(reports)


def start_api(settings: Settings, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """The API as production runs it, on the worker's database, Temporal and marketplace."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(
        DUMONT_DATABASE_URL=settings.resolved_database_url,
        DUMONT_DATA_DIR=str(data_dir),
        DUMONT_TEMPORAL_ADDRESS=settings.temporal_address,
        DUMONT_TASK_QUEUE=settings.task_queue,
        DUMONT_VAST_URL=settings.vast_url,
        DUMONT_VAST_API_KEY="unused",  # the worker rents; the API only reads offers
        DUMONT_GCP_PROJECT=settings.gcp_project or "",
        DUMONT_GCP_ENDPOINT=settings.gcp_endpoint or "",
        DUMONT_GCP_CREDENTIALS=settings.gcp_credentials,
        DUMONT_INSTALLATION_ID=settings.installation_id or "",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
async def stack_user(
    tmp_path: Path, dev_env: WorkflowEnvironment, sim: SimHandle, s3: S3Endpoint
) -> AsyncIterator[ApiUser]:
    """A user of the API (a uvicorn process) whose machines a worker in this process runs."""
    database_url = f"sqlite:///{tmp_path / 'api.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    temporal = dev_env.client.service_client.config.target_host
    queue = f"cli-live-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp_path / "worker",
        database_url=database_url,
        temporal_address=temporal,
        task_queue=queue,
        vast_url=sim.url,
        vast_api_key=SecretStr(sim.api_key),
        gcp_project="cli-live",
        gcp_endpoint=sim.gce_url,
        gcp_credentials="anonymous",
        gcp_ssh_port=sim.gce_ssh_port,
        installation_id=f"i{uuid.uuid4().hex[:8]}",
        public_api_url=url,
        boot_timeout_seconds=120,
        provider_poll_seconds=0.5,
        heartbeat_timeout_seconds=5,
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=SecretStr(s3.secret_key),
        s3_bucket=s3.bucket,
        s3_region="us-east-1",
    )
    engine = make_engine(database_url)
    migrate(engine)
    with session_scope(engine) as session:
        user_id = create_user(session, "carol").id
        token = issue_token(session, user_id)
    process = start_api(settings, tmp_path / "api", port)
    try:
        await asyncio.to_thread(wait_for_http, f"{url}/health", process)
        async with running_worker(dev_env.client, settings, engine):
            yield ApiUser(url=url, token=token, user_id=user_id, database_url=database_url)
    finally:
        process.terminate()
        process.wait(timeout=10)
        engine.dispose()
