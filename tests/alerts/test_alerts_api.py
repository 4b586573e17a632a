"""`/api/v1/alerts`: rules with their defaults and validation, the webhook secret, alerts and
deliveries, each owner seeing only their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.alerts.delivery import deliver_due
from core.alerts.evaluate import AlertTransition, Change
from core.alerts.rules import RuleKind
from core.alerts.store import record_transitions
from core.db import session_scope
from core.models import AlertRule
from tests.alerts.helpers import make_machine, webhook_receiver
from tests.api.conftest import Api

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DEFAULTS: list[dict[str, Any]] = [
    {"kind": "gpu_utilization", "threshold": 90.0, "duration_seconds": 300, "enabled": True},
    {"kind": "disk_usage", "threshold": 85.0, "duration_seconds": 0, "enabled": True},
    {"kind": "memory_usage", "threshold": 90.0, "duration_seconds": 0, "enabled": True},
    {"kind": "machine_offline", "threshold": None, "duration_seconds": 90, "enabled": True},
]


async def rules(api: Api, token: str | None = None) -> Any:
    response = await api.call("GET", "/api/v1/alerts/rules", token)
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_owner_starts_with_the_default_rules(alerts_api_any_db: Api) -> None:
    api = alerts_api_any_db
    assert await rules(api) == {
        "rules": DEFAULTS,
        "webhook_url": None,
        "webhook_secret_created_at": None,
    }
    assert (await rules(api))["rules"] == DEFAULTS  # read again: created once
    assert api.count(AlertRule) == len(DEFAULTS)
    anonymous = await api.http.get("/api/v1/alerts/rules")
    assert anonymous.status_code == 401


async def test_changing_rules_and_webhook_keeps_the_rest(alerts_api: Api) -> None:
    api = alerts_api
    body = {
        "rules": [
            {"kind": "gpu_utilization", "threshold": 80, "duration_seconds": 600},
            {"kind": "memory_usage", "enabled": False},
        ],
        "webhook_url": "https://hooks.example.com/dumont",
    }
    changed = await api.call("PUT", "/api/v1/alerts/rules", json=body)
    assert changed.status_code == 200, changed.text
    got = changed.json()
    assert got == await rules(api)
    assert got["webhook_url"] == "https://hooks.example.com/dumont"
    assert got["rules"] == [
        {"kind": "gpu_utilization", "threshold": 80.0, "duration_seconds": 600, "enabled": True},
        DEFAULTS[1],
        {**DEFAULTS[2], "enabled": False},
        DEFAULTS[3],
    ]
    # The other owner's rules are untouched.
    assert (await rules(api, api.bob))["rules"] == DEFAULTS
    # The URL alone changes; null removes it.
    removed = await api.call("PUT", "/api/v1/alerts/rules", json={"webhook_url": None})
    assert removed.json()["webhook_url"] is None
    assert removed.json()["rules"] == got["rules"]


def one(kind: str, **fields: Any) -> dict[str, Any]:
    """A body changing one rule, next to a valid change that must not be applied either."""
    return {"rules": [{"kind": "memory_usage", "threshold": 50}, {"kind": kind, **fields}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (one("gpu_utilization", threshold=150), "rules.1.threshold"),
        (one("disk_usage", threshold=-1), "rules.1.threshold"),
        (one("disk_usage", threshold=None), "rules.1.threshold"),
        (one("machine_offline", threshold=50), "rules.1.threshold"),
        (one("gpu_utilization", duration_seconds=-5), "rules.1.duration_seconds"),
        (one("machine_offline", duration_seconds=5), "rules.1.duration_seconds"),
        (one("cpu_usage", threshold=50), "rules.1.kind"),
        (one("disk_usage", enabled="sometimes"), "rules.1.enabled"),
        (one("memory_usage", threshold=60), "rules"),
        ({**one("disk_usage"), "webhook_url": "ftp://files.example.com/hook"}, "webhook_url"),
        ({**one("disk_usage"), "webhook_url": "not a url"}, "webhook_url"),
        ({**one("disk_usage"), "colour": "red"}, "colour"),
    ],
)
async def test_bad_rules_are_refused_naming_the_field_and_change_nothing(
    alerts_api: Api, body: dict[str, Any], field: str
) -> None:
    api = alerts_api
    before = await rules(api)
    refused = await api.call("PUT", "/api/v1/alerts/rules", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["message"].startswith(f"{field}: ")
    assert await rules(api) == before


async def test_webhook_secret_is_shown_once_and_rotates(alerts_api: Api) -> None:
    api = alerts_api
    first = await api.call("POST", "/api/v1/alerts/webhook-secret")
    assert first.status_code == 201
    assert first.headers["Cache-Control"] == "no-store"
    secret = first.json()["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    shown = await api.call("GET", "/api/v1/alerts/rules")
    assert shown.json()["webhook_secret_created_at"] == first.json()["created_at"]
    assert secret not in shown.text
    second = (await api.call("POST", "/api/v1/alerts/webhook-secret")).json()["webhook_secret"]
    assert second != secret
    assert (await rules(api, api.bob))["webhook_secret_created_at"] is None


def fire(api: Api, machine_id: str, owner_id: str, kind: RuleKind, at: datetime) -> None:
    with session_scope(api.engine) as session:
        transition = AlertTransition(Change.FIRE, machine_id, owner_id, kind, f"{kind} high")
        record_transitions(session, [transition], at)


def resolve(api: Api, alert_id: int, machine_id: str, owner_id: str, at: datetime) -> None:
    with session_scope(api.engine) as session:
        transition = AlertTransition(
            Change.RESOLVE, machine_id, owner_id, RuleKind.DISK_USAGE, "back", alert_id=alert_id
        )
        record_transitions(session, [transition], at)


async def test_alerts_are_listed_newest_first_per_owner(alerts_api_any_db: Api) -> None:
    api = alerts_api_any_db
    machine = make_machine(api.engine, api.alice_id)
    fire(api, machine.id, api.alice_id, RuleKind.DISK_USAGE, T0)
    fire(api, machine.id, api.alice_id, RuleKind.MEMORY_USAGE, T0 + timedelta(minutes=1))
    listed = (await api.call("GET", "/api/v1/alerts")).json()
    assert [(a["kind"], a["state"]) for a in listed] == [
        ("memory_usage", "firing"),
        ("disk_usage", "firing"),
    ]
    disk = listed[1]
    resolve(api, disk["id"], machine.id, api.alice_id, T0 + timedelta(minutes=2))

    firing = (await api.call("GET", "/api/v1/alerts", params={"state": "firing"})).json()
    assert [a["kind"] for a in firing] == ["memory_usage"]
    (resolved,) = (await api.call("GET", "/api/v1/alerts", params={"state": "resolved"})).json()
    assert (resolved["id"], resolved["resolved_reason"]) == (disk["id"], "back")
    assert resolved["resolved_at"] is not None
    assert (await api.call("GET", "/api/v1/alerts", params={"state": "open"})).status_code == 422

    got = await api.call("GET", f"/api/v1/alerts/{disk['id']}")
    assert got.json()["state"] == "resolved"
    # Someone else's alert answers like a missing one.
    assert (await api.call("GET", f"/api/v1/alerts/{disk['id']}", api.bob)).status_code == 404
    assert (await api.call("GET", "/api/v1/alerts/999999")).status_code == 404
    assert (await api.call("GET", "/api/v1/alerts", api.bob)).json() == []
    events = (await api.call("GET", f"/api/v1/machines/{machine.id}/events")).json()
    assert [e["event_type"] for e in events] == ["alert_resolved", "alert_firing", "alert_firing"]


async def test_deliveries_show_every_attempt_to_their_owner_only(alerts_api_any_db: Api) -> None:
    api = alerts_api_any_db
    machine = make_machine(api.engine, api.alice_id)
    with webhook_receiver([503]) as receiver:
        await api.call("PUT", "/api/v1/alerts/rules", json={"webhook_url": receiver.url})
        fire(api, machine.id, api.alice_id, RuleKind.DISK_USAGE, T0)
        async with httpx.AsyncClient() as http:
            await deliver_due(api.engine, http, T0)
            pending = (await api.call("GET", "/api/v1/alerts/deliveries")).json()
            await deliver_due(api.engine, http, T0 + timedelta(seconds=30))

    (delivery,) = pending
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "pending",
        1,
        503,
    )
    assert delivery["url"] == receiver.url and delivery["event"] == "alert.firing"
    assert "body" not in delivery
    (done,) = (await api.call("GET", "/api/v1/alerts/deliveries")).json()
    assert done["status"] == "delivered" and done["delivered_at"] is not None
    assert [(a["status_code"], a["error"]) for a in done["attempt_log"]] == [
        (503, "HTTP 503"),
        (200, None),
    ]
    delivered = await api.call("GET", "/api/v1/alerts/deliveries", params={"status": "delivered"})
    assert [d["id"] for d in delivered.json()] == [done["id"]]
    failed = await api.call("GET", "/api/v1/alerts/deliveries", params={"status": "failed"})
    assert failed.json() == []
    assert (await api.call("GET", "/api/v1/alerts/deliveries", api.bob)).json() == []
