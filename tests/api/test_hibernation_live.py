"""Hibernate and wake through HTTP on the real stack: the API, a worker with every activity,
the sim marketplace with SSH sandboxes and an S3 endpoint (rclone). The workspace survives the
round trip; the seed's shapes, events, stats and savings show it; conflicts answer 409."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh
from temporalio.testing import WorkflowEnvironment

from core.contracts import machine_workflow_id
from core.contracts.hibernation import HibernationConfig
from core.contracts.workflow import MachineSnapshot
from core.db import session_scope
from core.models import Machine
from tests.api.conftest import Api
from tests.api.test_machines_lifecycle import VALID, ssh_run, until_status
from tests.api.test_ssh_keys import new_key, public
from tests.fixtures.sim import SimHandle
from workflows.client import MachineHandle
from workflows.machine import MachineWorkflow

WAIT_SECONDS = 120


async def workflow_state(env: WorkflowEnvironment, machine_id: str) -> MachineSnapshot:
    handle: MachineHandle = env.client.get_workflow_handle_for(
        MachineWorkflow.run, machine_workflow_id(machine_id)
    )
    return await handle.query(MachineWorkflow.state)


async def until_instance_status(api: Api, machine_id: str, wanted: str) -> list[dict[str, Any]]:
    """Poll the progress route (as the CLI does) until the machine is `wanted`; every answer."""
    seen = []
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            response = await api.call("GET", f"/api/v1/machines/{machine_id}/progress")
            assert response.status_code == 200, response.text
            seen.append(response.json())
            if seen[-1]["state"] == wanted:
                return seen
            assert seen[-1]["state"] != "error", seen[-1]
            await asyncio.sleep(0.2)


async def sim_instance_ids(sim: SimHandle) -> set[str]:
    return {str(instance["id"]) for instance in await sim.admin.instances()}


async def a_running_machine(api: Api) -> tuple[str, dict[str, Any], asyncssh.SSHKey]:
    key = new_key()
    added = await api.call(
        "POST", "/api/v1/ssh-keys", json={"name": "me", "public_key": public(key)}
    )
    assert added.status_code == 201
    created = await api.call("POST", "/api/v1/machines", json=VALID)
    assert created.status_code == 201, created.text
    machine_id = created.json()["id"]
    async with asyncio.timeout(WAIT_SECONDS):
        machine = await until_status(api, machine_id, "running")
    return machine_id, machine, key


async def test_configure_checks_input_and_reaches_the_workflow(
    live: Api, dev_env: WorkflowEnvironment
) -> None:
    api = live
    machine_id, _machine, _key = await a_running_machine(api)
    url = f"/api/instances/{machine_id}/config"

    changed = await api.call(
        "PUT",
        url,
        json={
            "auto_hibernation_enabled": False,
            "gpu_usage_threshold": 12.5,
            "pause_after_minutes": 20,
            "pre_hibernate_command": "sync",
            "pre_hibernate_timeout_seconds": 30,
            "pre_hibernate_on_failure": "continue",
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "success": True,
        "instance_id": machine_id,
        "auto_hibernation": {
            "enabled": False,
            "pause_after_minutes": 20,
            "delete_after_minutes": 30,
            "gpu_usage_threshold": 12.5,
        },
        "pre_hibernate": {"command": "sync", "timeout_seconds": 30, "on_failure": "continue"},
        "pause": {"hibernate_after_minutes": 24 * 60},
    }
    wanted = HibernationConfig(
        enabled=False,
        gpu_usage_threshold=12.5,
        pause_after_minutes=20,
        delete_after_minutes=30,
        pre_hibernate_command="sync",
        pre_hibernate_timeout_seconds=30,
        pre_hibernate_on_failure="continue",
    )
    assert (await workflow_state(dev_env, machine_id)).config == wanted
    shown = (await api.call("GET", url)).json()
    assert shown == changed.json()  # the projection followed

    for bad in (
        {"pause_after_minutes": 0, "gpu_usage_threshold": 50},
        {"gpu_usage_threshold": "50"},
        {"delete_after_minutes": 10**9},
        {"pre_hibernate_on_failure": "ignore"},
        {"unknown": True},
        {},
    ):
        rejected = await api.call("PUT", url, json=bad)
        assert rejected.status_code == 422, (bad, rejected.text)
    assert (await workflow_state(dev_env, machine_id)).config == wanted
    assert (await api.call("GET", url)).json() == changed.json()

    cleared = await api.call("PUT", url, json={"pre_hibernate_command": None})
    assert cleared.json()["pre_hibernate"]["command"] is None
    assert (await workflow_state(dev_env, machine_id)).config.pre_hibernate_command is None
    status = (await api.call("GET", f"/api/instances/{machine_id}/status")).json()
    assert status["auto_hibernation"]["pause_after_minutes"] == 20
    assert (await api.call("DELETE", f"/api/v1/machines/{machine_id}")).status_code == 200
    gone = await api.call("PUT", url, json={"pause_after_minutes": 5})
    assert (gone.status_code, gone.json()["detail"]) == (409, "machine is destroyed")


async def test_hibernate_and_wake_through_http(live: Api, sim: SimHandle) -> None:
    api = live
    machine_id, machine, key = await a_running_machine(api)
    base = f"/api/instances/{machine_id}"
    # No automatic hibernation in the middle of the test.
    assert (
        await api.call("PUT", f"{base}/config", json={"auto_hibernation_enabled": False})
    ).status_code == 200
    await ssh_run(
        machine, key, "mkdir -p /workspace/run && echo 'epoch 7' > /workspace/run/ckpt.txt"
    )
    first_instance = machine["instance_id"]

    hibernated = await api.call("POST", f"{base}/hibernate", json={"reason": "end of day"})
    assert hibernated.status_code == 200, hibernated.text
    body = hibernated.json()
    assert set(body) == {"success", "snapshot_id", "instance_destroyed"}
    assert body["success"] is True and body["instance_destroyed"] is True
    snapshot_id = body["snapshot_id"]
    assert first_instance not in await sim_instance_ids(sim)

    again = await api.call("POST", f"{base}/hibernate")
    assert again.status_code == 409
    assert "hibernated" in again.json()["detail"]

    events = (await api.call("GET", f"{base}/events")).json()["events"]
    latest = events[0]
    assert (latest["event_type"], latest["snapshot_id"]) == ("hibernated", snapshot_id)
    assert set(latest) == {"event_type", "timestamp", "gpu_utilization", "snapshot_id", "reason"}
    stats = (await api.call("GET", "/api/hibernation/stats")).json()
    assert (stats["total_instances"], stats["hibernated"], stats["running"]) == (1, 1, 0)
    status = (await api.call("GET", f"{base}/status")).json()
    assert (status["status"], status["snapshot_id"]) == ("hibernated", snapshot_id)
    assert status["savings"]["storage_cost_usd"] >= 0
    snapshots = (await api.call("GET", f"/api/v1/machines/{machine_id}/snapshots")).json()
    assert snapshots[0]["id"] == snapshot_id and snapshots[0]["files"] >= 1
    assert snapshots[0]["stored_bytes"] > 0 and snapshots[0]["root_hash"]
    assert (await api.call("GET", "/api/v1/machines")).json()[0]["savings_usd"] is not None

    bad_wake = await api.call("POST", f"{base}/wake", json={"max_price": 0})
    assert bad_wake.status_code == 422
    woken = await api.call("POST", f"{base}/wake", json={"gpu_type": VALID["gpu_name"]})
    assert woken.status_code == 200, woken.text
    wake = woken.json()
    assert set(wake) == {
        "success", "instance_id", "vast_instance_id", "ssh_host", "ssh_port", "ssh_user",
        "time_taken",
    }  # fmt: skip
    assert wake["success"] is True and wake["instance_id"] == machine_id
    assert (
        isinstance(wake["vast_instance_id"], int)
        and str(wake["vast_instance_id"]) != first_instance
    )
    assert wake["time_taken"] > 0
    machine = (await api.call("GET", f"/api/v1/machines/{machine_id}")).json()
    where = ("ssh_host", "ssh_port", "ssh_user")
    assert [machine[k] for k in where] == [wake[k] for k in where]
    assert wake["ssh_user"] == "root"  # vast's containers
    assert await ssh_run(machine, key, "cat /workspace/run/ckpt.txt") == "epoch 7\n"
    again_awake = await api.call("POST", f"{base}/wake")
    assert again_awake.status_code == 409

    # Without waiting: 202 with where to look, then the machine gets there.
    accepted = await api.call("POST", f"{base}/hibernate", params={"wait": "false"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["Location"] == f"{base}/status"
    assert accepted.json() == {
        "machine_id": machine_id,
        "action": "hibernate",
        "status_url": f"{base}/status",
    }
    seen = await until_instance_status(api, machine_id, "hibernated")
    assert all(p["operation"] in (None, "snapshot") for p in seen)
    assert seen[-1]["operation"] is None
    accepted = await api.call("POST", f"{base}/wake", params={"wait": "false"}, json={})
    assert accepted.status_code == 202, accepted.text
    seen = await until_instance_status(api, machine_id, "running")
    assert all(p["operation"] in (None, "restore") for p in seen)
    machine = (await api.call("GET", f"/api/v1/machines/{machine_id}")).json()
    assert await ssh_run(machine, key, "cat /workspace/run/ckpt.txt") == "epoch 7\n"

    with session_scope(api.engine) as session:
        row = session.get(Machine, machine_id)
        assert row is not None and row.hibernated_seconds > 0 and row.hibernated_since is None
    status = (await api.call("GET", f"{base}/status")).json()
    assert status["savings"]["hibernated_hours"] > 0
    schedule = {"wake_time": "09:00", "sleep_time": "18:00", "timezone": "Europe/Lisbon"}
    assert (await api.call("PUT", f"{base}/schedule", json=schedule)).status_code == 200
    assert (await api.call("DELETE", f"/api/v1/machines/{machine_id}")).status_code == 200
    # Deleting the machine removed its schedules with it.
    assert (await api.call("GET", f"{base}/schedule")).status_code == 404
    stats = (await api.call("GET", "/api/hibernation/stats")).json()
    assert stats["total_instances"] == 0
