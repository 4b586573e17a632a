"""A CPU machine on GCP, from the CLI, on the whole stack (the API as uvicorn, a worker with
every activity, the sim's Compute Engine): created in the zone asked for, reached over SSH as
the metadata user with the owner's key, stopped, started and deleted with nothing left."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli.conftest import ApiUser
from tests.cli.test_hibernation_cli_live import cli, ssh
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import new_key, public


async def test_a_gcp_cpu_machine_from_the_cli(
    stack_user: ApiUser, sim: SimHandle, tmp_path: Path
) -> None:
    user = stack_user
    key = new_key()
    key_file = tmp_path / "id.pub"
    key_file.write_text(public(key))
    assert (await cli(user, "ssh-keys", "add", str(key_file))).exit_code == 0

    created = await cli(
        user, "machines", "create", "--provider", "gcp", "--machine-type", "e2-small",
        "--zone", "europe-west1-c", "--disk", "20",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "is running" in created.stdout and "ssh -p " in created.stdout
    assert "dumont@127." in created.stdout  # GCE's metadata user, at the VM's own address
    listed = await cli(user, "machines", "ls", "--json")
    machine = json.loads(listed.stdout)[0]
    assert (machine["provider"], machine["kind"], machine["gpu_name"]) == ("gcp", "cpu", None)
    assert (machine["machine_type"], machine["zone"], machine["ssh_user"]) == (
        "e2-small",
        "europe-west1-c",
        "dumont",
    )
    assert machine["instance_id"].startswith("europe-west1-c/")
    # e2-small in Belgium with a 20 GB standard disk, list price.
    assert abs(machine["price_per_hour"] - (0.01843 + 20 * 0.04 / 730)) < 2e-4
    machine_id = machine["id"]
    # The owner's key was attached to the running VM through its metadata.
    assert await ssh(user, machine_id, key, "echo hi > /workspace/a && cat /workspace/a") == "hi\n"

    stopped = await cli(user, "machines", "stop", machine_id)
    assert stopped.exit_code == 0, stopped.output
    (vm,) = await sim.gce_admin.instances()
    assert vm["status"] == "TERMINATED"
    started = await cli(user, "machines", "start", machine_id)
    assert started.exit_code == 0, started.output
    assert await ssh(user, machine_id, key, "cat /workspace/a") == "hi\n"

    assert (await cli(user, "machines", "rm", machine_id, "--yes")).exit_code == 0
    assert await sim.gce_admin.instances() == []


async def test_gcp_offers_list_the_catalogue(stack_user: ApiUser) -> None:
    async with httpx.AsyncClient(base_url=stack_user.url) as http:
        response = await http.get(
            "/api/v1/offers",
            params={"provider": "gcp", "region": "SA", "max_price": 0.02},
            headers={"Authorization": f"Bearer {stack_user.token}"},
        )
    assert response.status_code == 200, response.text
    offers = response.json()
    assert offers and all(o["country"] == "BR" for o in offers)
    assert [o["price_per_hour"] for o in offers] == sorted(o["price_per_hour"] for o in offers)
    assert offers[0]["offer_id"].startswith("e2-micro@southamerica-east1-")
