"""`dumont machines hibernate` and `wake` on the whole stack: the API (uvicorn), a worker with
every activity, the sim marketplace with SSH sandboxes and an S3 endpoint. The CLI follows the
machine with its progress bars and ends with what the user needs next (the ssh command)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from typer.testing import Result

from core.accounts import create_user, issue_token
from core.db import make_engine, migrate, session_scope
from core.settings import Settings
from tests.api.test_ssh_keys import new_key, public
from tests.cli.conftest import CLEARED_ENV, REPO_ROOT, ApiUser, dumont, free_port, wait_for_http
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.fixtures.worker import running_worker


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


async def cli(user: ApiUser, *args: str) -> Result:
    """The CLI in a thread: the worker runs on this event loop meanwhile."""
    return await asyncio.to_thread(dumont, *args, env=user.env())


async def ssh(user: ApiUser, machine_id: str, key: asyncssh.SSHKey, command: str) -> str:
    """Run a command on the machine where the API says it is, as its owner."""
    async with httpx.AsyncClient(base_url=user.url) as http:
        response = await http.get(
            f"/api/v1/machines/{machine_id}", headers={"Authorization": f"Bearer {user.token}"}
        )
    machine = response.json()
    async with asyncssh.connect(
        machine["ssh_host"], machine["ssh_port"], username="root", client_keys=[key],
        known_hosts=None,
    ) as conn:  # fmt: skip
        return str((await conn.run(command, check=True)).stdout)


async def test_hibernate_and_wake_from_the_cli(stack_user: ApiUser, tmp_path: Path) -> None:
    user = stack_user
    key = new_key()
    key_file = tmp_path / "id.pub"
    key_file.write_text(public(key))
    assert (await cli(user, "ssh-keys", "add", str(key_file))).exit_code == 0
    created = await cli(
        user, "machines", "create", "--gpu", "RTX 3090", "--image", "ubuntu:22.04",
        "--disk", "20", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    machine_id = json.loads(created.stdout)["id"]
    disabled = await cli(user, "machines", "config", machine_id, "--disable", "--pause-after", "9")
    assert disabled.exit_code == 0, disabled.output
    assert "settings changed" in disabled.stdout and "9 min idle" in disabled.stdout
    await ssh(user, machine_id, key, "echo 'half way' > /workspace/notes.txt")

    slept = await cli(user, "machines", "hibernate", machine_id)
    assert slept.exit_code == 0, slept.output
    assert f"{machine_id} is hibernated" in slept.stdout and "instance destroyed" in slept.stdout
    assert "hibernating" in slept.stdout  # its events, as they happened
    listed = await cli(user, "machines", "ls")
    assert "hibernated" in next(line for line in listed.stdout.splitlines() if machine_id in line)
    events = await cli(user, "machines", "events", machine_id)
    assert "snapshot " in events.stdout

    again = await cli(user, "machines", "hibernate", machine_id)
    assert again.exit_code == 1 and "hibernated" in again.stderr

    woke = await cli(user, "machines", "wake", machine_id, "--gpu", "RTX 3090")
    assert woke.exit_code == 0, woke.output
    assert f"{machine_id} is running" in woke.stdout and "ssh -p " in woke.stdout
    assert await ssh(user, machine_id, key, "cat /workspace/notes.txt") == "half way\n"

    as_json = await cli(user, "machines", "hibernate", machine_id, "--json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert body["success"] is True and body["instance_destroyed"] is True
    woke_json = await cli(user, "machines", "wake", machine_id, "--json")
    assert woke_json.exit_code == 0, woke_json.output
    assert json.loads(woke_json.stdout)["instance_id"] == machine_id
    assert (await cli(user, "machines", "rm", machine_id, "--yes")).exit_code == 0
