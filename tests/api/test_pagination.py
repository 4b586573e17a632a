"""Every list route pages with `?limit=` and `?cursor=`: the pages, followed through their
`Link: rel="next"` headers, hold exactly what one unlimited call shows, in its order, ties on
the timestamp included; a cursor the list did not make is a 422 naming `cursor`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from core.db import session_scope
from core.models import Alert, AlertDelivery, Event, Snapshot
from tests.api.conftest import Api
from tests.api.test_hibernation_routes import add_machine
from tests.api.test_ssh_keys import new_key, public

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Two rows share each timestamp: the id orders them.
TIMES = [AT, AT, AT + timedelta(minutes=1), AT + timedelta(minutes=1), AT + timedelta(minutes=2)]


async def pages(api: Api, path: str, **params: Any) -> list[list[Any]]:
    """Each page's items, following the Link header until there is none."""
    found: list[list[Any]] = []
    response = await api.call("GET", path, params=params)
    while True:
        assert response.status_code == 200, response.text
        found.append(response.json())
        following = response.links.get("next")
        if following is None:
            return found
        assert len(found) < 20, "the pages never end"
        response = await api.call("GET", following["url"])


async def assert_pages_hold_the_whole_list(api: Api, path: str, **params: Any) -> None:
    whole = (await api.call("GET", path, params=params)).json()
    assert len(whole) == len(TIMES), whole
    paged = await pages(api, path, limit=2, **params)
    assert [len(page) for page in paged] == [2, 2, 1]
    assert [item for page in paged for item in page] == whole


def seed(api: Api) -> str:
    """Five of each listed thing for alice, timestamps tied in pairs, and one of bob's."""
    machine_id = add_machine(api, status="stopped")
    for at in TIMES:
        add_machine(api, created_at=at)
    add_machine(api, owner_id=api.bob_id)
    with session_scope(api.engine) as session:
        for n, at in enumerate(TIMES):
            session.add(
                Event(
                    machine_id=machine_id, owner_id=api.alice_id, event_type="running", timestamp=at
                )
            )
            session.add(
                Snapshot(
                    id=f"snap-{uuid.uuid4().hex[:8]}",
                    owner_id=api.alice_id,
                    machine_id=machine_id,
                    status="committed",
                    created_at=at,
                    committed_at=at,
                )
            )
            alert = Alert(
                owner_id=api.alice_id,
                machine_id=machine_id,
                kind="machine_offline",
                reason=f"#{n}",
                fired_at=at,
            )
            session.add(alert)
            session.flush()
            assert alert.id is not None
            session.add(
                AlertDelivery(
                    owner_id=api.alice_id,
                    alert_id=alert.id,
                    event="alert.firing",
                    url="https://hooks.example/x",
                    body="{}",
                    created_at=at,
                )
            )
    return machine_id


async def test_every_list_pages_through_its_link_header(api_any_db: Api) -> None:
    api = api_any_db
    machine_id = seed(api)
    for _ in TIMES:
        body = {"name": "k", "public_key": public(new_key())}
        assert (await api.call("POST", "/api/v1/ssh-keys", json=body)).status_code == 201
    await assert_pages_hold_the_whole_list(api, "/api/v1/machines", status="running")
    await assert_pages_hold_the_whole_list(api, f"/api/v1/machines/{machine_id}/events")
    await assert_pages_hold_the_whole_list(api, f"/api/v1/machines/{machine_id}/snapshots")
    await assert_pages_hold_the_whole_list(api, "/api/v1/ssh-keys")
    await assert_pages_hold_the_whole_list(api, "/api/v1/alerts", machine_id=machine_id)
    await assert_pages_hold_the_whole_list(api, "/api/v1/alerts/deliveries")

    # The link keeps the filters: the next page of running machines is of running machines.
    first = await api.call("GET", "/api/v1/machines", params={"status": "running", "limit": 1})
    assert "status=running" in first.links["next"]["url"]
    last = await api.call("GET", "/api/v1/machines", params={"limit": 100})
    assert "link" not in last.headers


@pytest.mark.parametrize(
    "cursor", ["nonsense!", "W10", "WyJ4Il0", "WzEsMl0", "eyJhIjogMX0", "WyIyMDI2LTEzIiwgIngiXQ"]
)
async def test_a_cursor_the_list_did_not_make_is_a_422_naming_cursor(api: Api, cursor: str) -> None:
    response = await api.call("GET", "/api/v1/machines", params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", "cursor"]]
    assert response.json()["message"].startswith("cursor: ")


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
async def test_limit_is_bounded(api: Api, limit: str) -> None:
    response = await api.call("GET", "/api/v1/ssh-keys", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["message"].startswith("limit: ")


def test_every_route_that_returns_an_array_takes_limit_and_cursor(api: Api) -> None:
    spec = api.app.openapi()
    lists = []
    for route in iter_route_contexts(api.app.routes):
        if not isinstance(route.original_route, APIRoute) or "GET" not in (route.methods or ()):
            continue
        operation = spec["paths"][route.path]["get"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        if schema.get("type") == "array":
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            assert {"limit", "cursor"} <= params, route.path
            lists.append(route.path)
    assert len(lists) == 7, (
        lists
    )  # machines, events, snapshots, ssh keys, alerts, deliveries, offers
