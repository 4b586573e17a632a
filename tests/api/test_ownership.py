"""Every route refuses another owner, by construction: the test walks the app's own route table
(every path, every method, HTTP and websocket) with bob's token against alice's real machine,
ssh key, alert, delivery, snapshot, rules, webhook, retention and schedule, and nothing of
alice's changes, in the database or in Temporal.

- A route whose path names one of alice's things must answer 401, 403 or 404.
- A route with a path parameter that `Alice.owned` (filled by `alices_world`) has no value for
  fails the walk: a new route is covered the day it is added, once its parameter is there. A
  query parameter named like one of them gets alice's value too.
- A route without one acts on the caller's own things: any answer but a 422 (its body is built
  to pass validation, from its body model or BODIES) or a 5xx, and nothing of alice's in it.
- Explicit rules: the public routes (health, docs) answer anyone, without a token; the agent's
  route takes only an agent token, and bob's machine's token may not post for alice's machine;
  offers are the market's, not an owner's, and this app has no provider set up (503).
"""

from __future__ import annotations

import asyncio
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, WebSocket
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select
from starlette.exceptions import StarletteDeprecationWarning
from starlette.websockets import WebSocketDisconnect

from api.app import PUBLIC_PATHS
from core.agent_tokens import issue_agent_token
from core.db import session_scope
from core.models import Alert, AlertDelivery, AlertDeliveryAttempt, AlertRule, Snapshot
from core.schedules import get_machine_schedule
from tests.api.bodies import body_for
from tests.api.conftest import Api
from tests.api.test_hibernation_routes import add_machine
from tests.api.test_machines_input import VALID
from tests.api.test_ssh_keys import new_key, public
from tests.ingest.helpers import report

AGENT_ROUTE = ("POST", "/api/agent/status")
# The market's offers, no owner's; this app has no provider configured.
MARKET_ROUTES = {("GET", "/api/v1/offers"): {503}}
# Bodies the model alone cannot make valid (a real key).
BODIES: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("POST", "/api/v1/ssh-keys"): lambda: {"name": "bob's", "public_key": public(new_key())},
}
REFUSED = {401, 403, 404}


@dataclass
class Alice:
    """Alice's things, and the strings that must never reach bob."""

    owned: dict[str, str]  # path parameter -> alice's value
    secrets: list[str] = field(default_factory=list)


async def alices_world(api: Api) -> Alice:
    machine_id = (await api.call("POST", "/api/v1/machines", json=VALID)).json()["id"]
    key = await api.call(
        "POST", "/api/v1/ssh-keys", json={"name": "alice", "public_key": public(new_key())}
    )
    hook = f"https://alice-{uuid.uuid4().hex[:6]}.example/hook"
    calls = [
        ("PUT", "/api/v1/alerts/rules", {"webhook_url": hook}),
        ("POST", "/api/v1/alerts/webhook-secret", None),
        ("PUT", "/api/v1/snapshots/retention", {"keep_last": 3}),
        ("PUT", f"/api/instances/{machine_id}/schedule", {"wake_time": "09:00"}),
    ]
    answers = [await api.call(method, path, json=body) for method, path, body in calls]
    assert [a.status_code for a in [key, *answers]] == [201, 200, 201, 200, 200]
    reason = f"alice-alert-{uuid.uuid4().hex[:6]}"
    with session_scope(api.engine) as session:
        alert = Alert(
            owner_id=api.alice_id, machine_id=machine_id, kind="machine_offline", reason=reason
        )
        session.add(alert)
        session.flush()
        assert alert.id is not None
        delivery = AlertDelivery(
            owner_id=api.alice_id, alert_id=alert.id, event="alert.firing", url=hook, body="{}"
        )
        session.add(delivery)
        snapshot = Snapshot(
            id=f"snap-{uuid.uuid4().hex[:8]}",
            owner_id=api.alice_id,
            machine_id=machine_id,
            status="committed",
            committed_at=datetime.now(UTC),
        )
        session.add(snapshot)
        session.flush()
        assert delivery.id is not None
        session.add(AlertDeliveryAttempt(delivery_id=delivery.id, status_code=500))
        rule = session.exec(select(AlertRule).where(AlertRule.owner_id == api.alice_id)).first()
        assert rule is not None
        owned = {
            "machine_id": machine_id,
            "key_id": str(key.json()["id"]),
            "alert_id": str(alert.id),
            "delivery_id": str(delivery.id),
            "snapshot_id": snapshot.id,
            "rule_id": str(rule.id),
            "user_id": api.alice_id,
            "owner_id": api.alice_id,
        }
    secret = answers[1].json()["webhook_secret"]
    return Alice(owned, [machine_id, key.json()["fingerprint"], hook, secret, reason, snapshot.id])


def not_bobs_rows(engine: Engine, bob_id: str) -> dict[str, list[str]]:
    """Every row of every table, but bob's own (his rows, his machines' rows)."""
    with engine.connect() as conn:
        machines = SQLModel.metadata.tables["machines"]
        query = sa.select(machines.c.id).where(machines.c.owner_id == bob_id)
        bobs = set(conn.execute(query).scalars())
        found: dict[str, list[str]] = {}
        for table in SQLModel.metadata.sorted_tables:
            rows = []
            for row in conn.execute(sa.select(table)).mappings():
                machine_id = row["id"] if table.name == "machines" else row.get("machine_id")
                if bob_id in (row.get("owner_id"), row.get("user_id")) or machine_id in bobs:
                    continue
                rows.append(repr(sorted(row.items())))
            found[table.name] = sorted(rows)
    return found


async def temporal_state(api: Api, machine_id: str) -> tuple[int, object]:
    """How many events alice's machine's workflow has, and her machine's schedule."""
    client = await api.app.state.temporal.client()
    history = await client.get_workflow_handle(f"machine-{machine_id}").fetch_history()
    return len(history.events), await get_machine_schedule(client, machine_id)


def _websocket_refused(app: FastAPI, path: str, token: str) -> str | None:
    """None if the websocket was refused (or closed) before it was accepted."""
    with warnings.catch_warnings():  # starlette's TestClient frowns on httpx; it is what we have
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient, WebSocketDenialResponse
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with TestClient(app).websocket_connect(path, headers=headers):
            return "accepted another owner's websocket"
    except WebSocketDenialResponse as denied:
        return None if denied.status_code in REFUSED else f"denied with {denied.status_code}"
    except WebSocketDisconnect:
        return None


async def _agent_route(api: Api, alice: Alice) -> list[str]:
    """Only an agent token gets in, and only for its own machine."""
    bobs_machine = add_machine(api, owner_id=api.bob_id)
    with session_scope(api.engine) as session:
        bobs_agent = issue_agent_token(session, bobs_machine)
    body = report(alice.owned["machine_id"], datetime.now(UTC))
    answers = {
        "a user token": await api.call(*AGENT_ROUTE, token=api.bob, json=body),
        "bob's machine's token, alice's machine": await api.call(
            *AGENT_ROUTE, token=bobs_agent, json=body
        ),
    }
    expected = {"a user token": 401, "bob's machine's token, alice's machine": 403}
    return [
        f"{AGENT_ROUTE} with {what}: {answers[what].status_code}, expected {status}"
        for what, status in expected.items()
        if answers[what].status_code != status
    ]


async def walk(api: Api, alice: Alice) -> tuple[list[str], int]:
    """Every route with bob's token: what went wrong, in words, and how many calls it made."""
    failures: list[str] = []
    calls = 0
    for route in iter_route_contexts(api.app.routes):
        path = route.path or ""
        names = re.findall(r"\{(\w+)(?::[^}]*)?\}", path)
        unknown = [name for name in names if name not in alice.owned]
        if unknown:
            failures.append(f"{path}: no value of alice's for {unknown}; add one to `owned`")
            continue
        concrete = re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: alice.owned[m[1]], path)
        if isinstance(route.original_route, APIWebSocketRoute):
            problem = await asyncio.to_thread(_websocket_refused, api.app, concrete, api.bob)
            failures += [f"WS {path}: {problem}"] if problem else []
            calls += 1
            continue
        if not route.methods:
            failures.append(f"{path}: a {type(route.original_route).__name__} the walk cannot call")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            calls += 1
            if path in PUBLIC_PATHS:
                response = await api.http.request(method, concrete)
                if response.status_code != 200:
                    failures.append(f"{method} {path} (public): {response.status_code}")
                continue
            if (method, path) == AGENT_ROUTE:
                failures += await _agent_route(api, alice)
                continue
            problem = await _call(api, alice, route.original_route, method, path, concrete, names)
            failures += [f"{method} {path}: {problem}"] if problem else []
    return failures, calls


async def _call(
    api: Api, alice: Alice, route: Any, method: str, path: str, concrete: str, names: list[str]
) -> str | None:
    body: Any = None
    if (method, path) in BODIES:
        body = BODIES[method, path]()
    elif isinstance(route, APIRoute) and route.body_field is not None:
        annotation = route.body_field.field_info.annotation
        [model] = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not type(None)]
        assert isinstance(model, type) and issubclass(model, BaseModel), model
        try:
            body = body_for(model)
        except TypeError as exc:
            return f"{exc}; add a body to BODIES"
    # Query parameters that name one of alice's things get it too (`/alerts?machine_id=`).
    operation = api.app.openapi()["paths"].get(path, {}).get(method.lower(), {})
    names_in_query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    query = {name: alice.owned[name] for name in names_in_query if name in alice.owned}
    response = await api.call(method, concrete, token=api.bob, json=body, params=query)
    status = response.status_code
    if names:
        return None if status in REFUSED else f"{status} for alice's {names}: {response.text[:200]}"
    if (method, path) in MARKET_ROUTES:
        return None if status in MARKET_ROUTES[method, path] else f"{status}: {response.text[:200]}"
    if status == 422 or status >= 500:
        return f"{status}: {response.text[:200]}"
    leaked = [secret for secret in alice.secrets if secret in response.text]
    return f"shows alice's {leaked}" if leaked else None


async def test_every_route_refuses_another_owner(api_any_db: Api) -> None:
    api = api_any_db
    alice = await alices_world(api)
    machine_id = alice.owned["machine_id"]
    rows, temporal = not_bobs_rows(api.engine, api.bob_id), await temporal_state(api, machine_id)
    failures, calls = await walk(api, alice)
    assert failures == [] and calls > 30
    assert not_bobs_rows(api.engine, api.bob_id) == rows
    assert await temporal_state(api, machine_id) == temporal


async def test_the_walk_fails_a_route_that_does_not_check_the_owner(api: Api) -> None:
    alice = await alices_world(api)

    async def peek(machine_id: str) -> dict[str, str]:
        return {"machine_id": machine_id}

    async def watch(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    async def gadget(gadget_id: str) -> dict[str, str]:
        return {"gadget_id": gadget_id}

    api.app.add_api_route("/api/v1/machines/{machine_id}/peek", peek, tags=["test"])
    api.app.add_api_websocket_route("/api/v1/machines/{machine_id}/watch", watch)
    api.app.add_api_route("/api/v1/gadgets/{gadget_id}", gadget, tags=["test"])
    failures, _ = await walk(api, alice)
    assert failures[:1] and all("peek" in f or "watch" in f or "gadget" in f for f in failures)
    assert any(f.startswith("GET /api/v1/machines/{machine_id}/peek: 200") for f in failures)
    assert "WS /api/v1/machines/{machine_id}/watch: accepted another owner's websocket" in failures
    assert any(
        "/api/v1/gadgets/{gadget_id}: no value of alice's for ['gadget_id']" in f for f in failures
    )
