"""A machine's whole life through the API, with the real worker and the local marketplace:
create → running (SSH works with the owner's key) → stop/start/restart, conflicts answered 409
with the reason → destroy. Plus the offers the marketplace lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from temporalio.testing import WorkflowEnvironment

from core.db import session_scope
from core.models import Machine
from tests.api.conftest import Api, make_settings, running_api, temporal_address
from tests.api.test_ssh_keys import new_key, public
from tests.fixtures.sim import SimHandle
from tests.fixtures.worker import running_worker

VALID = {"gpu_name": "RTX 3090", "image": "ubuntu:22.04", "disk_gb": 20}
WAIT_SECONDS = 60


@pytest.fixture
async def live_api(
    tmp_path: Path, sqlite_url: str, dev_env: WorkflowEnvironment, sim: SimHandle
) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        temporal_address(dev_env),
        vast_url=sim.url,
        vast_api_key=sim.api_key,
        boot_timeout_seconds=60,
    )
    async with running_api(settings) as api, running_worker(dev_env.client, settings, api.engine):
        yield api


async def until_status(api: Api, machine_id: str, wanted: str) -> dict[str, Any]:
    """Poll the machine as a user would, until it reaches `wanted` (or says it cannot)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            machine = (await api.call("GET", f"/api/v1/machines/{machine_id}")).json()
            if machine["status"] == wanted:
                return machine
            assert machine["status"] != "error", machine
            await asyncio.sleep(0.1)


async def sim_instance_running(sim: SimHandle, instance_id: str) -> bool:
    instance = await sim.admin.instance(int(instance_id))
    return bool(instance["actual_status"] == "running")


async def ssh_run(machine: dict[str, Any], key: asyncssh.SSHKey, command: str) -> str:
    """Run a command on the machine as its owner would, with the ssh address the API gave."""
    async with asyncssh.connect(
        machine["ssh_host"],
        machine["ssh_port"],
        username=machine["ssh_user"],
        client_keys=[key],
        known_hosts=None,
        login_timeout=10,
    ) as conn:
        return str((await conn.run(command, check=True)).stdout)


async def can_log_in(machine: dict[str, Any], key: asyncssh.SSHKey) -> bool:
    try:
        return await ssh_run(machine, key, "echo hello") == "hello\n"
    except asyncssh.PermissionDenied:
        return False


async def test_a_machine_from_create_to_destroy(live_api: Api, sim: SimHandle) -> None:
    api = live_api
    created = await api.call("POST", "/api/v1/machines", json=VALID)
    assert created.status_code == 201, created.text
    machine_id = created.json()["id"]
    url = f"/api/v1/machines/{machine_id}"

    machine = await until_status(api, machine_id, "running")
    assert machine["instance_id"] and machine["price_per_hour"] > 0
    assert machine["ssh_user"] == "root"  # what vast's containers take
    assert machine["ssh"] == f"ssh -p {machine['ssh_port']} root@{machine['ssh_host']}"

    # A key added while the machine runs reaches it.
    key = new_key()
    assert not await can_log_in(machine, key)
    added = await api.call(
        "POST", "/api/v1/ssh-keys", json={"name": "me", "public_key": public(key)}
    )
    assert added.status_code == 201
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if await can_log_in(machine, key):
                break
            await asyncio.sleep(0.2)

    conflict = await api.call("POST", f"{url}/start")
    assert conflict.status_code == 409
    assert conflict.json()["detail"] == "machine is already running"

    await ssh_run(machine, key, "echo 'work in progress' > /workspace/notes.txt")
    stopped = await api.call("POST", f"{url}/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped"
    assert not await sim_instance_running(sim, machine["instance_id"])
    again = await api.call("POST", f"{url}/stop")
    assert (again.status_code, again.json()["detail"]) == (409, "machine is already stopped")
    restart = await api.call("POST", f"{url}/restart")
    assert restart.status_code == 409 and "start it first" in restart.json()["detail"]
    not_waiting = await api.call("POST", f"{url}/stop", params={"wait": "false"})
    assert (not_waiting.status_code, not_waiting.json()["detail"]) == (
        409,
        "machine is already stopped",
    )

    accepted = await api.call("POST", f"{url}/start", params={"wait": "false"})
    assert accepted.status_code == 202
    assert accepted.headers["Location"] == url
    assert accepted.json() == {"machine_id": machine_id, "action": "start", "status_url": url}
    machine = await until_status(api, machine_id, "running")
    assert await ssh_run(machine, key, "cat /workspace/notes.txt") == "work in progress\n"

    restarted = await api.call("POST", f"{url}/restart")
    assert (restarted.status_code, restarted.json()["status"]) == (200, "running")

    destroyed = await api.call("DELETE", url)
    assert (destroyed.status_code, destroyed.json()["status"]) == (200, "destroyed")
    assert [i for i in await sim.admin.instances() if i["id"] == int(machine["instance_id"])] == []
    assert (await api.call("GET", url)).json()["status"] == "destroyed"
    gone = await api.call("POST", f"{url}/start")
    assert (gone.status_code, gone.json()["detail"]) == (409, "machine is destroyed")

    events = (await api.call("GET", f"{url}/events")).json()
    assert events[0]["event_type"] == "destroyed"
    assert events[-1]["event_type"] == "created"
    timestamps = [e["timestamp"] for e in events]
    assert timestamps == sorted(timestamps, reverse=True)
    latest_two = (await api.call("GET", f"{url}/events", params={"limit": 2})).json()
    assert latest_two == events[:2]


async def test_an_action_on_an_ended_workflow_is_a_conflict(live_api: Api) -> None:
    """Even if the projection missed the end (say it still says stopped), Temporal knows."""
    api = live_api
    machine_id = (await api.call("POST", "/api/v1/machines", json=VALID)).json()["id"]
    await until_status(api, machine_id, "running")
    assert (await api.call("DELETE", f"/api/v1/machines/{machine_id}")).status_code == 200
    with session_scope(api.engine) as session:
        row = session.get(Machine, machine_id)
        assert row is not None
        row.status = "stopped"
        session.add(row)
    response = await api.call("POST", f"/api/v1/machines/{machine_id}/start")
    assert (response.status_code, response.json()["detail"]) == (409, "machine is destroyed")
