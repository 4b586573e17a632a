"""Ownership and availability: someone else's machine is indistinguishable from a missing one,
and without Temporal the API still answers (503 for what needs it, nothing written)."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from core import search_attributes
from core.contracts.states import MachineState
from core.db import session_scope
from core.models import Event, Machine
from tests.api.conftest import Api, closed_port, make_settings, running_api
from tests.api.test_machines_input import VALID
from tests.conftest import binary

MACHINE_CALLS = [
    ("GET", ""),
    ("GET", "/events"),
    ("POST", "/stop"),
    ("POST", "/start"),
    ("POST", "/restart"),
    ("DELETE", ""),
]


async def test_another_owners_machine_answers_like_a_missing_one(api: Api) -> None:
    created = await api.call("POST", "/api/v1/machines", json=VALID)
    machine_id = created.json()["id"]
    for method, suffix in MACHINE_CALLS:
        theirs = await api.call(method, f"/api/v1/machines/{machine_id}{suffix}", token=api.bob)
        missing = await api.call(method, f"/api/v1/machines/vast_nope{suffix}", token=api.bob)
        assert theirs.status_code == missing.status_code == 404, (method, suffix)
        assert theirs.json()["detail"] == f"machine {machine_id} not found"
        assert missing.json()["detail"] == "machine vast_nope not found"
    events = await api.call("GET", f"/api/v1/machines/{machine_id}/events")
    assert [e["event_type"] for e in events.json()] == ["created"]  # bob's calls did nothing


async def test_actions_on_a_destroyed_machine_conflict(api: Api) -> None:
    machine_id = (await api.call("POST", "/api/v1/machines", json=VALID)).json()["id"]
    with session_scope(api.engine) as session:
        machine = session.get(Machine, machine_id)
        assert machine is not None
        machine.status = MachineState.DESTROYED.value
        session.add(machine)
    for method, suffix in MACHINE_CALLS[2:]:
        response = await api.call(method, f"/api/v1/machines/{machine_id}{suffix}")
        assert response.status_code == 409, (method, suffix)
        assert response.json()["detail"] == "machine is destroyed"
    assert (await api.call("GET", f"/api/v1/machines/{machine_id}")).status_code == 200


async def test_create_without_temporal_is_503_and_writes_nothing(api_without_temporal: Api) -> None:
    api = api_without_temporal
    response = await api.call("POST", "/api/v1/machines", json=VALID)
    assert response.status_code == 503
    address = api.settings.temporal_address
    assert response.json()["detail"] == f"Temporal is unreachable at {address}"
    assert (api.count(Machine), api.count(Event)) == (0, 0)
    assert (await api.http.get("/health")).json() == {"status": "ok", "temporal": False}


async def test_without_temporal_reads_work_and_actions_are_503(api_without_temporal: Api) -> None:
    api = api_without_temporal
    with session_scope(api.engine) as session:
        session.add(
            Machine(
                id="vast_offline",
                owner_id=api.alice_id,
                gpu_name="RTX 3090",
                image="ubuntu:22.04",
                disk_gb=20,
                status="running",
            )
        )
    listed = await api.call("GET", "/api/v1/machines")
    assert [m["id"] for m in listed.json()] == ["vast_offline"]
    for method, suffix in MACHINE_CALLS[2:]:
        response = await api.call(method, f"/api/v1/machines/vast_offline{suffix}")
        assert response.status_code == 503, (method, suffix)
        assert "Temporal is unreachable" in response.json()["detail"]
    machine = (await api.call("GET", "/api/v1/machines/vast_offline")).json()
    assert machine["status"] == "running"


async def test_the_api_connects_once_temporal_comes_up(tmp_path: Path, sqlite_url: str) -> None:
    port = closed_port()
    async with running_api(make_settings(tmp_path, sqlite_url, f"127.0.0.1:{port}")) as api:
        assert (await api.call("POST", "/api/v1/machines", json=VALID)).status_code == 503
        env = await WorkflowEnvironment.start_local(
            port=port,
            dev_server_existing_path=binary("temporal"),
            search_attributes=list(search_attributes.ALL),
        )
        try:
            response = await api.call("POST", "/api/v1/machines", json=VALID)
            assert response.status_code == 201, response.text
            assert (await api.http.get("/health")).json()["temporal"] is True
        finally:
            await env.shutdown()
