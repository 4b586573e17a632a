"""The serverless routes without a worker (real Temporal, no machine ever moves): bad bodies are
422s naming the field that change nothing, in the database or in the workflow; another owner's,
an unknown and a destroyed machine are refused on every route; the status body's figures come
from the events and the cold starts since the mode was enabled. The round trips through a
running machine are in test_serverless_live.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api.app import create_app
from api.schemas.serverless import MAX_KEEP_ALIVE_PATHS
from core.db import session_scope
from core.models import Event
from core.serverless.keys import hash_endpoint_key
from core.serverless.table import ServerlessColdStart, ServerlessEndpoint
from tests.api.conftest import Api, make_settings
from tests.api.test_bad_input import refused
from tests.api.test_hibernation_routes import add_machine
from tests.api.test_machines_input import VALID
from tests.api.test_ownership import temporal_state

SEED = {"idle_timeout_minutes": 15, "keep_alive_paths": ["/health", "/ping"]}

# (body fields over the seed's, the field the 422 names, words its message holds)
BAD_BODIES: list[tuple[dict[str, Any], tuple[str | int, ...], str]] = [
    ({"idle_timeout_minutes": "15"}, ("idle_timeout_minutes",), "valid number"),
    ({"idle_timeout_minutes": True}, ("idle_timeout_minutes",), "valid number"),
    ({"idle_timeout_minutes": None}, ("idle_timeout_minutes",), "valid number"),
    ({"idle_timeout_minutes": 4.9}, ("idle_timeout_minutes",), "greater than or equal to 5"),
    ({"idle_timeout_minutes": -1}, ("idle_timeout_minutes",), "greater than or equal to 5"),
    ({"idle_timeout_minutes": 61}, ("idle_timeout_minutes",), "less than or equal to 60"),
    ({"keep_alive_paths": "/health"}, ("keep_alive_paths",), "valid list"),
    ({"keep_alive_paths": ["health"]}, ("keep_alive_paths",), "starting with '/'"),
    ({"keep_alive_paths": ["/a?b=1"]}, ("keep_alive_paths",), "without a query"),
    ({"keep_alive_paths": ["/a\x00"]}, ("keep_alive_paths",), "control"),
    ({"keep_alive_paths": ["/" + "a" * 300]}, ("keep_alive_paths", 0), "at most 256"),
    ({"keep_alive_paths": [f"/{i}" for i in range(21)]}, ("keep_alive_paths",), "at most 20"),
    ({"port": True}, ("port",), "a port is a number"),
    ({"port": 8000.5}, ("port",), "a port is a number"),
    ({"port": "8000/udp"}, ("port",), "TCP"),
    ({"port": 70000}, ("port",), "1 to 65535"),
    ({"port": 9000}, ("port",), "does not declare 9000/tcp"),
    ({}, ("port",), "several TCP ports (8000/tcp, 8001/tcp): say which"),
    ({"readiness_path": "ready"}, ("readiness_path",), "starting with '/'"),
    ({"max_pending_requests": 0}, ("max_pending_requests",), "greater than or equal to 1"),
    ({"max_pending_requests": 10_001}, ("max_pending_requests",), "less than or equal to 10000"),
    ({"max_pending_requests": 5.0}, ("max_pending_requests",), "valid integer"),
    ({"resume_timeout_seconds": 9}, ("resume_timeout_seconds",), "greater than or equal to 10"),
    ({"resume_timeout_seconds": "300"}, ("resume_timeout_seconds",), "valid integer"),
    ({"public": "yes"}, ("public",), "valid boolean"),
    ({"via_ssh": 1}, ("via_ssh",), "valid boolean"),
    ({"surprise": 1}, ("surprise",), "Extra inputs are not permitted"),
    ({"instance_id": 7}, ("instance_id",), "valid string"),
]


async def a_machine(api: Api, **fields: Any) -> str:
    """One of alice's machines with its workflow (which no worker runs)."""
    created = await api.call("POST", "/api/v1/machines", json={**VALID, **fields})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def serverless_calls(machine_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every serverless route, about this machine."""
    base = "/api/v1/serverless"
    body = {"instance_id": machine_id, **SEED, "port": 8000}
    return [
        ("POST", f"{base}/enable", body),
        ("POST", f"{base}/disable", {"instance_id": machine_id}),
        ("GET", f"{base}/status/{machine_id}", None),
        ("POST", f"{base}/pause/{machine_id}", None),
        ("POST", f"{base}/resume/{machine_id}", None),
        ("POST", f"{base}/rotate-key/{machine_id}", None),
    ]


async def test_bad_bodies_are_422_naming_the_field_and_change_nothing(api: Api) -> None:
    machine_id = await a_machine(api, ports=[8000, 8001])
    before = await temporal_state(api, machine_id)
    for change, loc, words in BAD_BODIES:
        body = {"instance_id": machine_id, **SEED, **change}
        response = await api.call("POST", "/api/v1/serverless/enable", json=body)
        assert words in refused(response, "body", *loc), (change, response.text)
    disable = await api.call("POST", "/api/v1/serverless/disable", json={"machine_id": "x"})
    assert disable.status_code == 422 and "instance_id" in disable.json()["message"]
    assert api.count(ServerlessEndpoint) == 0
    assert await temporal_state(api, machine_id) == before  # no update reached the workflow


async def test_another_owners_or_an_unknown_machine_is_404_on_every_route(api: Api) -> None:
    machine_id = await a_machine(api, ports=[8000])
    before = await temporal_state(api, machine_id)
    for token, target in ((api.bob, machine_id), (api.alice, "m-000000000000")):
        for method, path, body in serverless_calls(target):
            response = await api.call(method, path, token=token, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["detail"] == f"machine {target} not found"
    assert api.count(ServerlessEndpoint) == 0
    assert await temporal_state(api, machine_id) == before


async def test_a_destroyed_machine_takes_no_change_and_still_shows_its_status(api: Api) -> None:
    machine_id = add_machine(api, status="destroyed", declared_ports=["8000/tcp"])
    for method, path, body in serverless_calls(machine_id):
        response = await api.call(method, path, json=body)
        if method == "GET":
            assert response.status_code == 200 and response.json()["state"] == "destroyed"
        else:
            assert response.status_code == 409, (path, response.text)
            assert response.json()["detail"] == "machine is destroyed"
    assert api.count(ServerlessEndpoint) == 0


async def test_a_machine_never_enabled(api: Api) -> None:
    machine_id = add_machine(api, declared_ports=["8000/tcp"])
    status = await api.call("GET", f"/api/v1/serverless/status/{machine_id}")
    assert status.status_code == 200, status.text
    assert status.json() == {
        "machine_id": machine_id,
        "enabled": False,
        "state": "running",
        "gateway_url": None,
        "config": None,
        "key_prefix": None,
        "enabled_at": None,
        "last_request_at": None,
        "paused_seconds": 0.0,
        "savings_usd": 0.0,
        "resume_latency_ms": {"mean": None, "p95": None, "count": 0},
        "cycles": 0,
        "cold_starts_failed": 0,
    }
    for action in ("pause", "resume"):
        refused_ = await api.call("POST", f"/api/v1/serverless/{action}/{machine_id}")
        assert refused_.status_code == 409
        assert "serverless mode is off" in refused_.json()["detail"]
        assert "enable it first" in refused_.json()["detail"]
    off = await api.call("POST", "/api/v1/serverless/disable", json={"instance_id": machine_id})
    assert off.status_code == 409 and "serverless mode is off" in off.json()["detail"]
    rotate = await api.call("POST", f"/api/v1/serverless/rotate-key/{machine_id}")
    assert rotate.status_code == 409 and "enable serverless mode first" in rotate.json()["detail"]
    machine = (await api.call("GET", f"/api/v1/machines/{machine_id}")).json()
    assert machine["serverless"] is False


def _history(api: Api, machine_id: str, now: datetime) -> datetime:
    """Serverless mode enabled 2 h ago on a machine that ran at $0.40/h: a pause before (not
    counted), then a 30-min pause and resume, and a pause open for 30 min; cold starts of 1, 2
    and 3 s since, one failed, one from before. Returns when it was enabled."""
    enabled_at = now - timedelta(hours=2)
    states = [
        (-300, "paused", "paused"),
        (-180, "resumed", "running"),  # the state when the mode was enabled
        (-90, "paused", "paused"),
        (-60, "resumed", "running"),
        (-30, "paused", "paused"),
    ]
    with session_scope(api.engine) as session:
        session.add(
            ServerlessEndpoint(
                machine_id=machine_id,
                owner_id=api.alice_id,
                port="8000/tcp",
                keep_alive_paths=["/health"],
                key_hash=hash_endpoint_key("dsk_test"),
                key_prefix="dsk_test",
                enabled_at=enabled_at,
                updated_at=enabled_at,
                last_request_at=now - timedelta(minutes=31),
            )
        )
        for minutes, kind, state in states:
            at = now + timedelta(minutes=minutes)
            session.add(
                Event(
                    machine_id=machine_id,
                    owner_id=api.alice_id,
                    event_type=kind,
                    state=state,
                    timestamp=at,
                )
            )
        for minutes, outcome, total in [(-200, "ok", 9000.0), (-60, "ok", 1000.0),
                                         (-59, "timed_out", None), (-20, "ok", 3000.0),
                                         (-10, "ok", 2000.0)]:  # fmt: skip
            at = now + timedelta(minutes=minutes)
            session.add(
                ServerlessColdStart(machine_id=machine_id, at=at, outcome=outcome, total_ms=total)
            )
    return enabled_at


async def test_the_status_counts_what_happened_since_the_mode_was_enabled(api: Api) -> None:
    now = datetime.now(UTC)
    machine_id = add_machine(
        api,
        status="paused",
        declared_ports=["8000/tcp"],
        price_per_hour=0.40,
        paused_price_per_hour=0.40,
        disk_price_per_hour=0.02,
    )
    enabled_at = _history(api, machine_id, now)
    api.settings.gateway_public_url = "https://gw.example.com"
    response = await api.call("GET", f"/api/v1/serverless/status/{machine_id}")
    assert response.status_code == 200, response.text
    status = response.json()
    assert status["enabled"] is True and status["state"] == "paused"
    assert status["gateway_url"] == f"https://gw.example.com/serverless/{machine_id}/"
    assert datetime.fromisoformat(status["enabled_at"]) == enabled_at
    assert status["config"] == {
        "idle_timeout_minutes": 15,
        "keep_alive_paths": ["/health"],
        "port": "8000/tcp",
        "readiness_path": None,
        "max_pending_requests": 100,
        "resume_timeout_seconds": 300,
        "public": False,
        "via_ssh": False,
    }
    # 30 min closed + 30 min open (and the seconds the test took); not the earlier pause.
    assert 3600 <= status["paused_seconds"] < 3660
    hours = status["paused_seconds"] / 3600
    assert abs(status["savings_usd"] - hours * (0.40 - 0.02)) < 1e-4
    assert status["cycles"] == 1
    assert status["resume_latency_ms"] == {"mean": 2000.0, "p95": 3000.0, "count": 3}
    assert status["cold_starts_failed"] == 1
    assert status["key_prefix"] == "dsk_test"
    machine = (await api.call("GET", f"/api/v1/machines/{machine_id}")).json()
    assert machine["serverless"] is True
    listed = (await api.call("GET", "/api/v1/machines")).json()
    assert [m["serverless"] for m in listed if m["id"] == machine_id] == [True]


def test_the_document_states_the_seeds_bounds(tmp_path: Path) -> None:
    document = create_app(make_settings(tmp_path, "sqlite://", "127.0.0.1:1")).openapi()
    fields = document["components"]["schemas"]["ServerlessEnable"]["properties"]
    assert fields["idle_timeout_minutes"]["minimum"] == 5
    assert fields["idle_timeout_minutes"]["maximum"] == 60
    assert fields["keep_alive_paths"]["maxItems"] == MAX_KEEP_ALIVE_PATHS
    assert set(document["paths"]) >= {
        "/api/v1/serverless/enable",
        "/api/v1/serverless/disable",
        "/api/v1/serverless/status/{machine_id}",
        "/api/v1/serverless/pause/{machine_id}",
        "/api/v1/serverless/resume/{machine_id}",
        "/api/v1/serverless/rotate-key/{machine_id}",
    }
