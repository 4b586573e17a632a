"""Pause and resume through HTTP on the real stack (the API, a worker with every activity, the
sim with SSH sandboxes, an S3 endpoint): the owner's workspace survives, states and events show
what happened, the wrong state answers 409 with why, and nobody else can pause the machine."""

from __future__ import annotations

from pathlib import Path

from tests.api.conftest import Api
from tests.api.test_hibernation_live import a_running_machine, sim_instance_ids
from tests.api.test_machines_lifecycle import VALID, ssh_run
from tests.api.test_service_live import Answers, answers_nothing, served
from tests.cli.conftest import free_port
from tests.fixtures.sim import SimHandle


async def test_pause_and_resume_through_http(live: Api, sim: SimHandle) -> None:
    api = live
    machine_id, machine, key = await a_running_machine(api)
    base = f"/api/v1/machines/{machine_id}"
    await ssh_run(machine, key, "echo 'epoch 3' > /workspace/ckpt.txt")

    # Someone else's token: as if the machine did not exist, and nothing happens.
    stranger = await api.call("POST", f"{base}/pause", token=api.bob)
    assert stranger.status_code == 404
    assert (await api.call("GET", base)).json()["status"] == "running"

    paused = await api.call("POST", f"{base}/pause", params={"reason": "lunch"})
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["status"] == "paused" and body["instance_id"] == machine["instance_id"]
    assert machine["instance_id"] in await sim_instance_ids(sim)  # stopped, disk kept

    for action, words in (("pause", "already paused"), ("start", "resume it")):
        refused = await api.call("POST", f"{base}/{action}")
        assert refused.status_code == 409, refused.text
        assert words in refused.json()["detail"]
    stats = (await api.call("GET", "/api/hibernation/stats")).json()
    assert stats["paused"] == 1
    status = (await api.call("GET", f"/api/instances/{machine_id}/status")).json()
    assert status["status"] == "paused" and status["savings"]["paused_hours"] > 0

    resumed = await api.call("POST", f"{base}/resume", token=api.bob)
    assert resumed.status_code == 404
    resumed = await api.call("POST", f"{base}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "running"
    assert resumed.json()["instance_id"] == machine["instance_id"]
    again = resumed.json()
    assert (await ssh_run(again, key, "cat /workspace/ckpt.txt")).strip() == "epoch 3"

    events = (await api.call("GET", f"{base}/events")).json()
    resumed_event = next(e for e in events if e["event_type"] == "resumed")
    assert "on its host in" in (resumed_event["reason"] or "")
    paused_event = next(e for e in events if e["event_type"] == "paused")
    assert (paused_event["reason"] or "").startswith("lunch: snapshot ")


async def test_a_service_answers_again_after_resume_on_its_host_and_on_a_new_one(
    live: Api, sim: SimHandle
) -> None:
    api = Answers(live)
    port = free_port()
    # The service serves the workspace: what it answers comes back with the snapshot.
    on_start = f"exec python3 -m http.server {port} --directory /workspace/www"
    body = {**VALID, "ports": [port], "on_start": on_start}
    created = await api.call("POST", "/api/v1/machines", json=body)
    machine_id, key = created["id"], f"{port}/tcp"
    await api.call(
        "PUT", f"/api/instances/{machine_id}/config", json={"auto_hibernation_enabled": False}
    )
    machine = await api.until(machine_id, "running")
    instance_id = machine["instance_id"]
    www = Path((await sim.admin.instance(int(instance_id)))["workspace_path"]) / "www"
    www.mkdir()
    (www / "index.html").write_text("epoch 12")
    assert await served(machine["ports"][key]) == "epoch 12"

    # Paused: the instance stopped, the service with it; resumed: back on the same address.
    paused = await api.call("POST", f"/api/v1/machines/{machine_id}/pause")
    assert paused["status"] == "paused" and paused["ports"] == {key: None}
    assert await answers_nothing(machine["ports"][key])
    await api.call("POST", f"/api/v1/machines/{machine_id}/resume")
    machine = await api.until(machine_id, "running")
    assert machine["instance_id"] == instance_id
    assert await served(machine["ports"][key]) == "epoch 12"

    # The host taken while paused: a new instance, the workspace restored, the service on it.
    await api.call("POST", f"/api/v1/machines/{machine_id}/pause")
    await sim.admin.take_host(int(instance_id))
    await api.call("POST", f"/api/v1/machines/{machine_id}/resume")
    machine = await api.until(machine_id, "running")
    assert machine["instance_id"] != instance_id
    assert await served(machine["ports"][key]) == "epoch 12"
    assert instance_id not in await sim_instance_ids(sim)  # the stopped one destroyed
