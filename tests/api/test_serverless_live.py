"""Serverless mode through HTTP on the real stack (the API, a worker with every activity, the
sim's sandboxes, an S3 endpoint): enable → status → pause → resume → disable, the endpoint key
shown once and rotated, the workflow told of every change and of none that was refused."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.testing import WorkflowEnvironment

from core.db import session_scope
from core.serverless.keys import key_matches
from core.serverless.table import ServerlessEndpoint
from tests.api.conftest import Api
from tests.api.test_bad_input import refused
from tests.api.test_hibernation_live import workflow_state
from tests.api.test_machines_lifecycle import VALID
from tests.api.test_service_live import Answers

BASE = "/api/v1/serverless"


def stored_hash(api: Api, machine_id: str) -> str:
    with session_scope(api.engine) as session:
        row = session.get(ServerlessEndpoint, machine_id)
        assert row is not None
        return row.key_hash


async def a_running_service(api: Api) -> str:
    """A running machine that declares one port (nothing need listen on it here)."""
    answers = Answers(api)
    created = await answers.call("POST", "/api/v1/machines", json={**VALID, "ports": [8000]})
    await answers.until(created["id"], "running")
    return str(created["id"])


async def ok(api: Api, method: str, path: str, **kw: Any) -> dict[str, Any]:
    response = await api.call(method, path, **kw)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def event_types(api: Api, machine_id: str) -> list[str]:
    response = await api.call("GET", f"/api/v1/machines/{machine_id}/events")
    return [e["event_type"] for e in response.json()]


async def test_enable_pause_resume_disable_and_the_key(
    live: Api, dev_env: WorkflowEnvironment
) -> None:
    api = live
    machine_id = await a_running_service(api)
    refused_pause = await api.call("POST", f"{BASE}/pause/{machine_id}")
    assert refused_pause.status_code == 409 and "enable it first" in refused_pause.text

    seed = {"instance_id": machine_id, "idle_timeout_minutes": 15, "keep_alive_paths": ["/health"]}
    # Two first enables at once: one endpoint, one key, shown to one of them.
    both = await asyncio.gather(*(ok(api, "POST", f"{BASE}/enable", json=seed) for _ in "ab"))
    [enabled] = [answer for answer in both if answer["endpoint_key"] is not None]
    assert [answer["key_prefix"] for answer in both] == [enabled["key_prefix"]] * 2
    assert api.count(ServerlessEndpoint) == 1
    key = enabled["endpoint_key"]
    assert key.startswith("dsk_") and enabled["key_prefix"] == key[:12]
    assert enabled["enabled"] is True and enabled["state"] == "running"
    assert enabled["gateway_url"] == f"http://api.test/serverless/{machine_id}/"
    assert enabled["config"]["port"] == "8000/tcp"  # the machine's only port
    assert enabled["config"]["idle_timeout_minutes"] == 15
    assert key_matches(key, stored_hash(api, machine_id))
    snapshot = await workflow_state(dev_env, machine_id)
    assert (
        snapshot.serverless.config.enabled
        and snapshot.serverless.config.idle_timeout_seconds == 900
    )
    assert "serverless_enabled" in await event_types(api, machine_id)
    assert (await ok(api, "GET", f"/api/v1/machines/{machine_id}"))["serverless"] is True

    # A bad change is refused whole: the row and the workflow keep the configuration.
    bad = await api.call("POST", f"{BASE}/enable", json={**seed, "idle_timeout_minutes": 90})
    refused(bad, "body", "idle_timeout_minutes")
    status = await ok(api, "GET", f"{BASE}/status/{machine_id}")
    assert status["config"] == enabled["config"]
    assert (await workflow_state(dev_env, machine_id)).serverless.config.idle_timeout_seconds == 900

    # Enabling again changes the configuration and keeps the key, which is not shown again.
    again = await ok(api, "POST", f"{BASE}/enable", json={**seed, "idle_timeout_minutes": 7.5})
    assert again["endpoint_key"] is None and again["key_prefix"] == enabled["key_prefix"]
    assert again["config"]["idle_timeout_minutes"] == 7.5
    assert again["enabled_at"] == enabled["enabled_at"]
    assert (
        key not in str(again)
        and key not in (await api.call("GET", f"{BASE}/status/{machine_id}")).text
    )
    assert (await workflow_state(dev_env, machine_id)).serverless.config.idle_timeout_seconds == 450
    assert key_matches(key, stored_hash(api, machine_id))

    rotated = await ok(api, "POST", f"{BASE}/rotate-key/{machine_id}")
    new_key = rotated["endpoint_key"]
    assert new_key.startswith("dsk_") and new_key != key
    assert (
        rotated["key_prefix"] == new_key[:12] and rotated["gateway_url"] == enabled["gateway_url"]
    )
    assert key_matches(new_key, stored_hash(api, machine_id))
    assert not key_matches(key, stored_hash(api, machine_id))

    paused = await ok(api, "POST", f"{BASE}/pause/{machine_id}")
    assert paused["state"] == "paused" and paused["enabled"] is True
    twice = await api.call("POST", f"{BASE}/pause/{machine_id}")
    assert twice.status_code == 409 and "already paused" in twice.json()["detail"]
    await asyncio.sleep(0.5)
    while_paused = await ok(api, "GET", f"{BASE}/status/{machine_id}")
    assert while_paused["state"] == "paused" and while_paused["paused_seconds"] > 0
    assert while_paused["cycles"] == 0

    resumed = await ok(api, "POST", f"{BASE}/resume/{machine_id}")
    assert resumed["state"] == "running"
    assert resumed["cycles"] == 1 and resumed["paused_seconds"] >= while_paused["paused_seconds"]

    off = await ok(api, "POST", f"{BASE}/disable", json={"instance_id": machine_id})
    assert off["enabled"] is False and off["cycles"] == 1
    assert not (await workflow_state(dev_env, machine_id)).serverless.config.enabled
    assert "serverless_disabled" in await event_types(api, machine_id)
    assert (await ok(api, "GET", f"/api/v1/machines/{machine_id}"))["serverless"] is False
    off_again = await api.call("POST", f"{BASE}/disable", json={"instance_id": machine_id})
    assert off_again.status_code == 409
    refused_pause = await api.call("POST", f"{BASE}/pause/{machine_id}")
    assert refused_pause.status_code == 409 and "enable it first" in refused_pause.text

    # On again: the figures start over, the (rotated) key is kept. A test setting lowers the
    # seed's 5-minute floor (the document still says 5).
    api.settings.serverless_min_idle_minutes = 0.1
    back = await ok(api, "POST", f"{BASE}/enable", json={**seed, "idle_timeout_minutes": 0.25})
    assert (await workflow_state(dev_env, machine_id)).serverless.config.idle_timeout_seconds == 15
    assert back["endpoint_key"] is None and back["key_prefix"] == rotated["key_prefix"]
    assert back["enabled_at"] > enabled["enabled_at"] and back["cycles"] == 0
    assert key_matches(new_key, stored_hash(api, machine_id))
