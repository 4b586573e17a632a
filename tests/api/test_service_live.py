"""A machine that runs a service, through HTTP on the real stack (the API, a worker with every
activity, the sim's SSH sandboxes, an S3 endpoint): the service answers on the address the
machine shows for its port, and comes back by itself after a stop and start and after a
hibernate and wake; its env reaches the service and never an answer of the API.

Only the address the API shows is used, so the test holds whether the sim maps container ports
to the same or to other host ports."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx

from tests.api.conftest import Api
from tests.api.test_machines_lifecycle import VALID
from tests.cli.conftest import free_port
from tests.fixtures.sim import SimHandle

WAIT_SECONDS = 120


class Answers:
    """Every answer the API gave in the test, to look for a secret in."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.texts: list[str] = []

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        response = await self.api.call(method, path, **kw)
        assert response.status_code in (200, 201), response.text
        self.texts.append(response.text)
        return response.json()

    async def until(self, machine_id: str, status: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                machine: dict[str, Any] = await self.call("GET", f"/api/v1/machines/{machine_id}")
                if machine["status"] == status:
                    return machine
                assert machine["status"] != "error", machine
                await asyncio.sleep(0.2)


async def served(address: str) -> str:
    """What the service answers at `address`, once it answers (it starts after the boot)."""
    async with asyncio.timeout(WAIT_SECONDS), httpx.AsyncClient(timeout=5) as http:
        while True:
            try:
                response = await http.get(f"http://{address}/")
                if response.status_code == 200:
                    return response.text
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)


async def answers_nothing(address: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"http://{address}/")
    except httpx.HTTPError:
        return True
    return response.status_code != 200


async def test_a_service_answers_on_its_address_and_comes_back_after_every_boot(
    live: Api,
) -> None:
    api = Answers(live)
    port = free_port()  # the sim's machines may still share the host's network
    secret = f"greeting-{secrets.token_hex(8)}"
    # Machine-specific: the instance it runs on (vast's CONTAINER_ID) and the secret env value.
    on_start = (
        'mkdir -p www && printf "%s on %s" "$GREETING" "$CONTAINER_ID" > www/index.html'
        f" && exec python3 -m http.server {port} --directory www"
    )
    body = {**VALID, "ports": [port], "env": {"GREETING": secret}, "on_start": on_start}
    created = await api.call("POST", "/api/v1/machines", json=body)
    machine_id, key = created["id"], f"{port}/tcp"
    assert created["ports"] == {key: None}
    # No automatic hibernation in the middle of the test.
    await api.call(
        "PUT", f"/api/instances/{machine_id}/config", json={"auto_hibernation_enabled": False}
    )

    machine = await api.until(machine_id, "running")
    assert machine["env_names"] == ["GREETING"] and machine["on_start"] == on_start
    assert await served(machine["ports"][key]) == f"{secret} on {machine['instance_id']}"

    stopped = await api.call("POST", f"/api/v1/machines/{machine_id}/stop")
    assert stopped["ports"] == {key: None}
    assert await answers_nothing(machine["ports"][key])
    await api.call("POST", f"/api/v1/machines/{machine_id}/start")
    machine = await api.until(machine_id, "running")
    assert await served(machine["ports"][key]) == f"{secret} on {machine['instance_id']}"

    first_instance = machine["instance_id"]
    await api.call("POST", f"/api/instances/{machine_id}/hibernate", json={})
    await api.call("POST", f"/api/instances/{machine_id}/wake", json={})
    machine = await api.until(machine_id, "running")
    assert machine["instance_id"] != first_instance
    assert await served(machine["ports"][key]) == f"{secret} on {machine['instance_id']}"

    events = await api.call("GET", f"/api/v1/machines/{machine_id}/events", params={"limit": 100})
    started = [e["reason"] for e in reversed(events) if e["event_type"] == "on_start_started"]
    assert started == [
        "on-start started after create",
        "on-start started after start",
        "on-start started after wake",
    ]
    await api.call("GET", "/api/v1/machines")
    await api.call("DELETE", f"/api/v1/machines/{machine_id}")
    assert all(secret not in text for text in api.texts)


async def test_two_machines_serving_the_same_port_each_answer_on_their_own_address(
    live: Api, sim: SimHandle
) -> None:
    api = Answers(live)
    status = await sim.admin.status()
    assert status["network"] == "netns", "the sim shares the host's network: ports collide"
    # Both on 8000, where a service on this host may listen too (Dumont's own API does).
    on_start = (
        'mkdir -p www && printf "%s" "$CONTAINER_ID" > www/index.html'
        " && exec python3 -m http.server 8000 --directory www"
    )
    body = {**VALID, "ports": [8000], "on_start": on_start}
    ids = [(await api.call("POST", "/api/v1/machines", json=body))["id"] for _ in range(2)]
    machines = [await api.until(machine_id, "running") for machine_id in ids]
    addresses = [m["ports"]["8000/tcp"] for m in machines]
    assert addresses[0] != addresses[1]
    for machine, address in zip(machines, addresses, strict=True):
        assert await served(address) == machine["instance_id"]
    for machine_id in ids:
        await api.call("DELETE", f"/api/v1/machines/{machine_id}")
