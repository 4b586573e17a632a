"""Creating machines: what is accepted, what is refused (422 naming the field), and that a
refusal writes nothing. Real Temporal, no worker: a created machine stays `starting`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import TypedSearchAttributes

from core import search_attributes
from core.contracts import machine_workflow_id
from core.db import session_scope
from core.machine_ids import is_machine_id
from core.models import Event, Machine
from tests.api.conftest import Api
from tests.workflows.helpers import SPEC
from workflows.client import MachineClient

VALID = {"gpu_name": "RTX 4090", "image": "pytorch/pytorch:latest", "disk_gb": 40}


async def test_create_returns_the_machine_and_starts_its_workflow(api_any_db: Api) -> None:
    api = api_any_db
    body = {**VALID, "num_gpus": 2, "region": "eu", "max_price": 1.5, "name": "trainer"}
    response = await api.call("POST", "/api/v1/machines", json=body)
    assert response.status_code == 201, response.text
    machine = response.json()
    assert machine["status"] == "starting"
    assert machine["region"] == "EU" and machine["num_gpus"] == 2 and machine["name"] == "trainer"
    assert machine["ssh"] is None  # no address until the instance is up

    listed = (await api.call("GET", "/api/v1/machines")).json()
    assert [m["id"] for m in listed] == [machine["id"]]
    assert (await api.call("GET", f"/api/v1/machines/{machine['id']}")).json() == machine
    events = (await api.call("GET", f"/api/v1/machines/{machine['id']}/events")).json()
    assert [e["event_type"] for e in events] == ["created"]

    client = api.app.state.temporal._client
    described = await client.get_workflow_handle(machine_workflow_id(machine["id"])).describe()
    attrs: TypedSearchAttributes = described.typed_search_attributes
    assert attrs.get(search_attributes.MACHINE_STATE) == "starting"
    assert attrs.get(search_attributes.GPU_NAME) == "RTX 4090"
    assert attrs.get(search_attributes.MACHINE_OWNER) == api.alice_id


async def test_list_shows_only_your_machines_and_filters_by_status(api: Api) -> None:
    mine = (await api.call("POST", "/api/v1/machines", json=VALID)).json()
    theirs = (await api.call("POST", "/api/v1/machines", token=api.bob, json=VALID)).json()
    assert [m["id"] for m in (await api.call("GET", "/api/v1/machines")).json()] == [mine["id"]]
    bobs = (await api.call("GET", "/api/v1/machines", token=api.bob)).json()
    assert [m["id"] for m in bobs] == [theirs["id"]]
    starting = await api.call("GET", "/api/v1/machines", params={"status": "starting"})
    assert [m["id"] for m in starting.json()] == [mine["id"]]
    assert (await api.call("GET", "/api/v1/machines", params={"status": "stopped"})).json() == []
    bad = await api.call("GET", "/api/v1/machines", params={"status": "asleep"})
    assert bad.status_code == 422 and "status" in bad.json()["message"]


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("gpu_name", {"gpu_name": ""}, "at least 1 character"),
    ("gpu_name", {"gpu_name": 4090}, "valid string"),
    ("num_gpus", {"num_gpus": 0}, "greater than or equal to 1"),
    ("num_gpus", {"num_gpus": 9}, "less than or equal to 8"),
    ("num_gpus", {"num_gpus": "two"}, "valid integer"),
    ("image", {"image": ""}, "at least 1 character"),
    ("disk_gb", {"disk_gb": 5}, "greater than or equal to 10"),
    ("disk_gb", {"disk_gb": 4096}, "less than or equal to 2048"),
    ("disk_gb", {"disk_gb": 10.5}, "valid integer"),
    ("region", {"region": "MARS"}, "unknown region 'MARS'"),
    ("region", {"region": 7}, "valid string"),
    ("max_price", {"max_price": 0}, "greater than 0"),
    ("max_price", {"max_price": "cheap"}, "valid number"),
    ("min_reliability", {"min_reliability": 1.5}, "less than or equal to 1"),
    ("min_reliability", {"min_reliability": -0.1}, "greater than or equal to 0"),
    ("min_vram_gb", {"min_vram_gb": -1}, "greater than or equal to 0"),
    ("name", {"name": ""}, "at least 1 character"),
    ("colour", {"colour": "red"}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(
    ("field", "change", "why"), BAD_BODIES, ids=[f"{b[0]}={b[1]}" for b in BAD_BODIES]
)
async def test_bad_input_is_refused_naming_the_field(
    api: Api, field: str, change: dict[str, Any], why: str
) -> None:
    response = await api.call("POST", "/api/v1/machines", json={**VALID, **change})
    assert response.status_code == 422
    error = response.json()
    assert [e["loc"] for e in error["detail"]] == [["body", field]]
    assert why in error["detail"][0]["msg"]
    assert error["message"].startswith(f"{field}: ") and why in error["message"]
    assert (api.count(Machine), api.count(Event)) == (0, 0)


async def test_missing_fields_are_all_named(api: Api) -> None:
    response = await api.call("POST", "/api/v1/machines", json={"disk_gb": 20})
    assert response.status_code == 422
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {
        ("body", "gpu_name"),
        ("body", "image"),
    }
    assert (await api.call("POST", "/api/v1/machines", content=b"{not json")).status_code == 422
    assert (api.count(Machine), api.count(Event)) == (0, 0)


async def test_concurrent_creates_all_succeed(api_any_db: Api) -> None:
    api = api_any_db
    responses = await asyncio.gather(
        *(api.call("POST", "/api/v1/machines", json={**VALID, "name": f"m{i}"}) for i in range(6))
    )
    assert [r.status_code for r in responses] == [201] * 6
    assert (api.count(Machine), api.count(Event)) == (6, 6)


async def test_a_new_machine_has_a_provider_neutral_id_and_is_a_gpu_machine(api: Api) -> None:
    machine = (await api.call("POST", "/api/v1/machines", json=VALID)).json()
    assert is_machine_id(machine["id"]) and machine["id"].startswith("m-")
    assert (machine["kind"], machine["num_gpus"]) == ("gpu", 1)
    with session_scope(api.engine) as session:
        row = session.get(Machine, machine["id"])
        assert row is not None and (row.kind, row.provider) == ("gpu", "vast")


CPU = {"kind": "cpu", "image": "ubuntu:22.04", "disk_gb": 20}


@pytest.mark.parametrize(
    ("field", "value"), [("gpu_name", "RTX 4090"), ("num_gpus", 1), ("min_vram_gb", 8)]
)
async def test_a_cpu_machine_takes_no_gpu_fields(api: Api, field: str, value: object) -> None:
    response = await api.call("POST", "/api/v1/machines", json={**CPU, field: value})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]
    assert response.json()["message"] == f"{field}: a cpu machine has no GPU: leave it out"
    assert (api.count(Machine), api.count(Event)) == (0, 0)


async def test_a_kind_the_provider_cannot_run_is_409_with_its_reason(api: Api) -> None:
    response = await api.call("POST", "/api/v1/machines", json=CPU)
    assert response.status_code == 409
    assert response.json() == {"detail": "vast.ai rents GPU machines only"}
    assert (api.count(Machine), api.count(Event)) == (0, 0)
    unknown = await api.call("POST", "/api/v1/machines", json={**CPU, "kind": "tpu"})
    assert unknown.status_code == 422 and unknown.json()["message"].startswith("kind: ")


async def test_an_id_taken_in_temporal_is_409_and_that_machine_is_left_alone(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = f"m-{uuid.uuid4().hex[:12]}"
    client = await api.app.state.temporal.client()
    theirs = await MachineClient(client).start(
        machine_id=taken, owner_id="u_other", spec=SPEC, task_queue=api.settings.task_queue
    )
    monkeypatch.setattr("api.services.machines.new_machine_id", lambda: taken)
    response = await api.call("POST", "/api/v1/machines", json=VALID)
    assert response.status_code == 409
    assert response.json() == {"detail": "a machine with this id already exists"}
    assert (api.count(Machine), api.count(Event)) == (0, 0)
    assert (await theirs.describe()).status == WorkflowExecutionStatus.RUNNING
    await theirs.terminate(reason="test over")
