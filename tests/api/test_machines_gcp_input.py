"""Creating a GCP machine: the provider, machine type, zone and Spot travel to the machine's
row and workflow; what GCP cannot take is a 422 naming the field (or a 409 with GCP's reason
for a GPU), and a refusal writes nothing. Real Temporal, no worker."""

from __future__ import annotations

import pytest

from api.services.machines import spec_of
from core.db import session_scope
from core.models import Event, Machine
from tests.api.conftest import Api

GCP = {"provider": "gcp", "kind": "cpu", "image": "debian-12", "disk_gb": 20}


async def test_a_gcp_machine_keeps_its_catalogue_choice(api: Api) -> None:
    body = {**GCP, "machine_type": "e2-medium", "zone": "europe-west1-b", "spot": True}
    response = await api.call("POST", "/api/v1/machines", json=body)
    assert response.status_code == 201, response.text
    machine = response.json()
    assert (machine["provider"], machine["kind"]) == ("gcp", "cpu")
    assert (machine["machine_type"], machine["zone"], machine["spot"]) == (
        "e2-medium",
        "europe-west1-b",
        True,
    )
    with session_scope(api.engine) as session:
        row = session.get(Machine, machine["id"])
        assert row is not None
        spec = spec_of(row)  # what every later provision (a wake, a new host) asks for
    assert (spec.provider, spec.machine_type, spec.zone, spec.spot) == (
        "gcp",
        "e2-medium",
        "europe-west1-b",
        True,
    )


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"provider": "aws"}, "provider", "unknown provider 'aws' (one of vast, gcp)"),
        ({"machine_type": "n2-highmem-96"}, "machine_type", "unknown GCP machine type"),
        ({"zone": "mars-north1-a"}, "zone", "unknown GCP zone 'mars-north1-a'"),
        ({"image": "pytorch/pytorch:latest"}, "image", "GCP boots VM images, not container"),
        ({"ports": [8000]}, "ports", "GCP machines do not publish ports yet"),
        ({"env": {"A": "1"}}, "env", "GCP machines do not take environment variables yet"),
        (
            {"provider": "vast", "kind": "gpu", "gpu_name": "RTX 4090", "zone": "us-central1-a"},
            "zone",
            "only for provider gcp, not vast",
        ),
    ],
)
async def test_what_gcp_cannot_take_is_422_naming_the_field(
    api: Api, change: dict[str, object], field: str, message: str
) -> None:
    response = await api.call("POST", "/api/v1/machines", json={**GCP, **change})
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]
    assert response.json()["message"].startswith(f"{field}: {message}")
    assert (api.count(Machine), api.count(Event)) == (0, 0)


async def test_a_gpu_on_gcp_is_409_with_gcps_reason(api: Api) -> None:
    body = {**GCP, "kind": "gpu", "gpu_name": "RTX 4090"}
    response = await api.call("POST", "/api/v1/machines", json=body)
    assert response.status_code == 409
    assert response.json() == {"detail": "Dumont rents CPU VMs on GCP (GPUs come from vast.ai)"}
    assert (api.count(Machine), api.count(Event)) == (0, 0)
