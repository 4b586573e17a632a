"""The official `vastai` client (PyPI) against the sim, unchanged: the wire-protocol check."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from vastai import VastAI

from tests.fixtures.sim import SimHandle

VASTAI_CLI = Path(sys.executable).parent / "vastai"


async def test_sdk_searches_creates_shows_stops_starts_and_destroys(sim: SimHandle) -> None:
    vast = VastAI(api_key=sim.api_key, server_url=sim.url, raw=True)

    offers = await asyncio.to_thread(
        vast.search_offers,
        "gpu_name=RTX_4090 num_gpus=1 dph_total<2 reliability>0.8",
        order="dph_total",
        limit=5,
    )
    assert 0 < len(offers) <= 5
    assert all(o["gpu_name"] == "RTX 4090" and o["num_gpus"] == 1 for o in offers)
    assert all(o["dph_total"] < 2 for o in offers)
    assert [o["dph_total"] for o in offers] == sorted(o["dph_total"] for o in offers)

    created = await asyncio.to_thread(
        vast.create_instance,
        offers[0]["id"],
        image="pytorch/pytorch",
        disk=20,
        label="sdk-test",
        env="-e FOO=bar -p 8000:8000",
        onstart_cmd="echo hi",
    )
    assert created["success"] is True
    instance_id = created["new_contract"]
    await sim.wait_for_status(instance_id, "running")

    shown = await asyncio.to_thread(vast.show_instance, instance_id)
    assert shown["actual_status"] == "running" and shown["label"] == "sdk-test"
    assert shown["extra_env"]["FOO"] == "bar"  # the SDK turned the pair list into a dict
    listed = await asyncio.to_thread(vast.show_instances)
    assert [row["id"] for row in listed] == [instance_id]

    assert (await asyncio.to_thread(vast.stop_instance, instance_id))["success"] is True
    await sim.wait_for_status(instance_id, "stopped")
    assert (await asyncio.to_thread(vast.start_instance, instance_id))["success"] is True
    await sim.wait_for_status(instance_id, "running")

    assert (await asyncio.to_thread(vast.destroy_instance, instance_id))["success"] is True
    assert await asyncio.to_thread(vast.show_instance, instance_id) is None
    assert await asyncio.to_thread(vast.show_instances) == []


def _cli(sim: SimHandle, *args: str) -> object:
    result = subprocess.run(
        [str(VASTAI_CLI), "--url", sim.url, "--api-key", sim.api_key, *args, "--raw"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_cli_search_and_show(sim: SimHandle) -> None:
    offers = await asyncio.to_thread(
        _cli,
        sim,
        "search",
        "offers",
        "gpu_name=H100_SXM num_gpus>=2 geolocation in [US,DE,SE]",
        "--order",
        "dph_total-",
        "--limit",
        "4",
    )
    assert isinstance(offers, list) and 0 < len(offers) <= 4
    assert all(o["gpu_name"] == "H100 SXM" and o["num_gpus"] >= 2 for o in offers)
    assert all(o["geolocation"][-2:] in ("US", "DE", "SE") for o in offers)
    assert [o["dph_total"] for o in offers] == sorted(
        (o["dph_total"] for o in offers), reverse=True
    )

    async with sim.client() as client:
        created = await client.put(f"/api/v0/asks/{offers[0]['id']}/", json={"image": "ubuntu"})
    instance_id = created.json()["new_contract"]
    shown = await asyncio.to_thread(_cli, sim, "show", "instance", str(instance_id))
    assert isinstance(shown, dict) and shown["id"] == instance_id
    assert shown["gpu_name"] == "H100 SXM"
