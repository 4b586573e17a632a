"""Endpoint keys: without the machine's key (or with a wrong one) the gateway answers 401 and
the machine stays paused, billing nothing; the key in `X-Dumont-Key` or as `Authorization:
Bearer` gets through and never reaches the service, while the service's own Authorization
header (vLLM's --api-key, an OpenAI client) arrives untouched; a public endpoint needs no key."""

from __future__ import annotations

import httpx

from core.contracts.states import MachineState
from core.db import session_scope
from core.models import ServerlessEndpoint
from tests.gateway.stack import Stack

S = MachineState


def headers_seen(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["headers"])


async def test_without_the_key_401_and_the_machine_stays_paused(stack: Stack) -> None:
    machine = await stack.serverless_machine()
    await stack.pause(machine)
    async with httpx.AsyncClient(timeout=120) as http:
        for headers in (
            {},
            {"X-Dumont-Key": "dsk_wrong"},
            {"Authorization": "Bearer dsk_wrong"},
            {"Authorization": f"Basic {machine.key}"},
            {"X-Dumont-Key": "dsk_wrong", "Authorization": f"Bearer {machine.key}"},
        ):
            refused = await http.post(f"{machine.url}/v1/infer", headers=headers, json={})
            assert refused.status_code == 401, (headers, refused.text)
            assert "endpoint key" in refused.json()["detail"]
        stranger = await http.get(f"{stack.url}/serverless/m-000000000000/", headers=machine.auth())
        assert stranger.status_code == 404
        assert (await stack.state(machine.id)).state is S.PAUSED
        assert "resuming" not in stack.event_types(machine.id)

        # The key as a Bearer token wakes it; the service sees neither the key nor that header.
        woken = await http.get(
            f"{machine.url}/a", headers={"Authorization": f"Bearer {machine.key}"}
        )
        seen = headers_seen(woken)
        assert "authorization" not in seen and "x-dumont-key" not in seen
        assert woken.headers["x-dumont-cold-start"] == "true"

        # With X-Dumont-Key, the service's own Authorization passes untouched.
        own = {"X-Dumont-Key": machine.key, "Authorization": "Bearer sk-the-services-own"}
        seen = headers_seen(await http.get(f"{machine.url}/b", headers=own))
        assert seen["authorization"] == "Bearer sk-the-services-own"
        assert "x-dumont-key" not in seen
    await stack.destroy(machine)


async def test_headers_on_their_way_through_and_a_public_endpoint(stack: Stack) -> None:
    machine = await stack.serverless_machine(public=True)
    sent = {
        "X-Forwarded-For": "203.0.113.9",
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "dropped: Connection lists it",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "TE": "trailers",
        "X-Custom": "kept",
        "Authorization": "Bearer the-services-own",
    }
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.get(f"{machine.url}/path%2Fwith/escapes?q=a%20b&r=1", headers=sent)
        direct = headers_seen(await http.get(f"{machine.url}/"))
    assert direct["x-forwarded-for"] == "127.0.0.1"
    seen = headers_seen(answer)
    assert answer.json()["path"] == "/path%2Fwith/escapes?q=a%20b&r=1"
    assert seen["x-custom"] == "kept" and seen["authorization"] == "Bearer the-services-own"
    # Loopback is a trusted proxy to uvicorn: the chain already ends at the client it names.
    assert seen["x-forwarded-for"] == "203.0.113.9"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == stack.url.removeprefix("http://")
    for hop in ("x-hop", "proxy-authorization", "te"):
        assert hop not in seen, hop
    await stack.destroy(machine)


async def test_the_enable_routes_url_and_key_reach_the_service(stack: Stack) -> None:
    """As a user would: enable through the API, then call the gateway URL it answers."""
    machine = await stack.serverless_machine()  # its own key replaced by the route's below
    await stack.api("POST", "/api/v1/serverless/disable", json={"instance_id": machine.id})
    with session_scope(stack.engine) as session:
        row = session.get(ServerlessEndpoint, machine.id)
        assert row is not None
        session.delete(row)  # as if never enabled: the route makes a new key
    enabled = await stack.api(
        "POST",
        "/api/v1/serverless/enable",
        json={"instance_id": machine.id, "keep_alive_paths": ["/health"]},
    )
    url, key = enabled["gateway_url"], enabled["endpoint_key"]
    assert url.rstrip("/") == machine.url and key
    await stack.gateway.routes.refresh(machine.id)
    async with httpx.AsyncClient(timeout=60) as http:
        assert (await http.get(f"{url}v1/models")).status_code == 401
        assert (
            await http.get(f"{url}v1/models", headers={"X-Dumont-Key": machine.key})
        ).status_code == 401
        answer = await http.get(f"{url}v1/models", headers={"X-Dumont-Key": key})
        assert answer.status_code == 200 and answer.json()["path"] == "/v1/models"
        assert (await http.get(f"{url}health")).text == "ok"  # keep-alive, no key
    await stack.destroy(machine)
