"""`dumont sim ...` against the real API and a real sim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from providers.base import CreateRequest, OfferQuery
from providers.vast import VastProvider
from tests.cli.conftest import ApiUser, add_machine, dumont
from tests.fixtures.sim import SimHandle


async def _sim_instance(sim: SimHandle) -> str:
    vast = VastProvider(sim.url, sim.api_key)
    try:
        offer = (await vast.search_offers(OfferQuery(limit=1)))[0]
        created = await vast.create_instance(
            CreateRequest(offer.offer_id, "pytorch/pytorch", 10, "dumont-cli-sim-1")
        )
    finally:
        await vast.aclose()
    return created.instance_id


def _gpus(gpu_file: str) -> list[dict[str, Any]]:
    """The GPUs as the machine's agent reads them."""
    gpus: list[dict[str, Any]] = json.loads(Path(gpu_file).read_text())["gpus"]
    return gpus


def _sim_env(user: ApiUser, sim: SimHandle) -> dict[str, str | None]:
    return user.env(VAST_URL=sim.url, DUMONT_SIM_ADMIN_TOKEN=sim.admin_token)


async def test_sim_load_sets_the_gpu_file_the_machines_agent_reads(
    api_user: ApiUser, sim: SimHandle
) -> None:
    instance_id = await _sim_instance(sim)
    machine_id = add_machine(api_user, instance_id=instance_id)

    result = dumont(
        "sim", "load", machine_id, "--gpu", "95", "--vram-gb", "20", env=_sim_env(api_user, sim)
    )

    assert result.exit_code == 0, result.output
    assert f"sim instance {instance_id}" in result.stdout
    gpus = _gpus((await sim.admin.instance(int(instance_id)))["gpu_file"])
    assert gpus and all(g["utilization_percent"] == 95 for g in gpus)
    assert all(g["memory_used_mb"] == 20 * 1024 for g in gpus)


async def test_sim_load_explains_a_machine_without_instance_and_a_bad_admin_token(
    api_user: ApiUser, sim: SimHandle
) -> None:
    pending = add_machine(api_user, status="starting")
    instance_id = await _sim_instance(sim)
    running = add_machine(api_user, instance_id=instance_id)

    no_instance = dumont("sim", "load", pending, "--gpu", "50", env=_sim_env(api_user, sim))
    bad_token = dumont(
        "sim", "load", running, "--gpu", "50",
        env=api_user.env(VAST_URL=sim.url, DUMONT_SIM_ADMIN_TOKEN="wrong"),
    )  # fmt: skip
    no_sim = dumont("sim", "load", running, "--gpu", "50", env=api_user.env())

    assert no_instance.exit_code == 1 and "has no instance" in no_instance.stderr
    assert bad_token.exit_code == 1 and "X-Admin-Token" in bad_token.stderr
    assert no_sim.exit_code == 1 and "VAST_URL" in no_sim.stderr
    gpus = _gpus((await sim.admin.instance(int(instance_id)))["gpu_file"])
    assert gpus and all(g["utilization_percent"] == 0 for g in gpus)


async def test_sim_faults_add_list_and_clear(api_user: ApiUser, sim: SimHandle) -> None:
    env = _sim_env(api_user, sim)

    added = dumont(
        "sim", "faults", "add", "--status", "503", "--count", "2", "--path-prefix",
        "/api/v1/instances", env=env,
    )  # fmt: skip
    listed = dumont("sim", "faults", "ls", env=env)

    assert added.exit_code == 0, added.output
    assert "503" in listed.stdout and "/api/v1/instances" in listed.stdout
    async with sim.client() as vast:
        assert (await vast.get("/api/v1/instances/")).status_code == 503
        cleared = dumont("sim", "faults", "clear", env=env)
        assert cleared.exit_code == 0
        assert json.loads(dumont("sim", "faults", "ls", "--json", env=env).stdout) == []
        assert (await vast.get("/api/v1/instances/")).status_code == 200
