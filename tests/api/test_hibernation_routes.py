"""The hibernation routes without a worker: input checked before Temporal is asked (422 naming
the field, nothing changed), another owner's machine answers 404, and the read routes (status,
events, stats, snapshots, the machine list) show what the database holds in the seed's shapes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.db import session_scope
from core.models import Event, Machine, Snapshot, SnapshotPack, SnapshotPackRef
from core.savings import GB
from tests.api.conftest import Api

CONFIG_FIELDS = (
    "auto_hibernation_enabled",
    "gpu_usage_threshold",
    "pause_after_minutes",
    "delete_after_minutes",
    "pre_hibernate_command",
    "pre_hibernate_timeout_seconds",
    "pre_hibernate_on_failure",
)

NEW_ROUTES = [
    ("GET", "/api/instances/{id}/status"),
    ("GET", "/api/instances/{id}/config"),
    ("PUT", "/api/instances/{id}/config"),
    ("POST", "/api/instances/{id}/hibernate"),
    ("POST", "/api/instances/{id}/wake"),
    ("GET", "/api/instances/{id}/events"),
    ("GET", "/api/v1/machines/{id}/snapshots"),
    ("GET", "/api/v1/machines/{id}/progress"),
]


def add_machine(api: Api, owner_id: str | None = None, **fields: Any) -> str:
    """A machine row as the workflow would have left it (no worker runs here)."""
    machine_id = fields.pop("id", f"vast_{uuid.uuid4().hex[:12]}")
    values: dict[str, Any] = {
        "id": machine_id,
        "owner_id": owner_id or api.alice_id,
        "gpu_name": "RTX 4090",
        "image": "pytorch/pytorch",
        "disk_gb": 20,
        "status": "running",
    }
    values.update(fields)
    with session_scope(api.engine) as session:
        session.add(Machine(**values))
    return machine_id


def config_row(api: Api, machine_id: str) -> dict[str, Any]:
    with session_scope(api.engine) as session:
        machine = session.get(Machine, machine_id)
        assert machine is not None
        return {
            name: getattr(machine, "auto_hibernation_enabled" if name == "enabled" else name)
            for name in ("enabled", *CONFIG_FIELDS[1:])
        }


def add_snapshot(
    api: Api,
    machine_id: str,
    snapshot_id: str,
    *,
    status: str = "committed",
    committed_at: datetime | None = None,
    packs: Sequence[tuple[str, int]] = (),
    owner_id: str | None = None,
) -> None:
    """A snapshot row with its packs (pack id, size) referenced as a commit leaves them."""
    owner = owner_id or api.alice_id
    with session_scope(api.engine) as session:
        session.add(
            Snapshot(
                id=snapshot_id,
                owner_id=owner,
                machine_id=machine_id,
                status=status,
                root_hash="ab" * 32 if status == "committed" else None,
                files=3,
                logical_bytes=3 * GB,
                stored_bytes=sum(size for _, size in packs),
                uploaded_bytes=sum(size for _, size in packs) // 2,
                packs=len(packs),
                committed_at=committed_at,
            )
        )
        session.flush()
        for pack_id, size in packs:
            if session.get(SnapshotPack, pack_id) is None:
                session.add(
                    SnapshotPack(
                        id=pack_id,
                        owner_id=owner,
                        snapshot_id=snapshot_id,
                        key=f"packs/{owner}/{pack_id}",
                        size=size,
                        state="uploaded",
                    )
                )
                session.flush()
            if status == "committed":
                session.add(SnapshotPackRef(snapshot_id=snapshot_id, pack_id=pack_id))


# --- input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"gpu_usage_threshold": 101}, "gpu_usage_threshold", "less than or equal to 100"),
        ({"gpu_usage_threshold": -1}, "gpu_usage_threshold", "greater than or equal to 0"),
        ({"gpu_usage_threshold": "5"}, "gpu_usage_threshold", "valid number"),
        ({"pause_after_minutes": 0}, "pause_after_minutes", "greater than or equal to 1"),
        ({"pause_after_minutes": 10081}, "pause_after_minutes", "less than or equal to 10080"),
        ({"pause_after_minutes": 2.5}, "pause_after_minutes", "valid integer"),
        ({"pause_after_minutes": "3"}, "pause_after_minutes", "valid integer"),
        ({"delete_after_minutes": 0}, "delete_after_minutes", "greater than or equal to 1"),
        ({"delete_after_minutes": 525601}, "delete_after_minutes", "less than or equal"),
        ({"auto_hibernation_enabled": "yes"}, "auto_hibernation_enabled", "valid boolean"),
        ({"auto_hibernation_enabled": 1}, "auto_hibernation_enabled", "valid boolean"),
        ({"auto_hibernation_enabled": None}, "auto_hibernation_enabled", "may not be null"),
        ({"pre_hibernate_command": ""}, "pre_hibernate_command", "at least 1 character"),
        ({"pre_hibernate_command": "   "}, "pre_hibernate_command", "must not be blank"),
        ({"pre_hibernate_command": "x" * 4001}, "pre_hibernate_command", "at most 4000"),
        ({"pre_hibernate_timeout_seconds": 0}, "pre_hibernate_timeout_seconds", "greater"),
        ({"pre_hibernate_timeout_seconds": 3601}, "pre_hibernate_timeout_seconds", "less"),
        ({"pre_hibernate_on_failure": "retry"}, "pre_hibernate_on_failure", "'abort'"),
        ({"gpu_threshold": 5}, "gpu_threshold", "Extra inputs are not permitted"),
        ({}, "request", "nothing to change"),
    ],
)
async def test_bad_config_is_422_naming_the_field_and_changes_nothing(
    api: Api, body: dict[str, Any], field: str, words: str
) -> None:
    machine_id = add_machine(api)
    before = config_row(api, machine_id)
    # A valid field next to the bad one is not applied either.
    full = {"pause_after_minutes": 7, **body} if body else body
    response = await api.call("PUT", f"/api/instances/{machine_id}/config", json=full)
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith(f"{field}: ") and words in message, message
    assert config_row(api, machine_id) == before


async def test_config_without_a_body_is_422(api: Api) -> None:
    machine_id = add_machine(api)
    response = await api.call("PUT", f"/api/instances/{machine_id}/config")
    assert response.status_code == 422
    assert "Field required" in response.json()["message"]


async def test_get_config_shows_the_rows_settings(api: Api) -> None:
    machine_id = add_machine(
        api,
        auto_hibernation_enabled=False,
        gpu_usage_threshold=12.5,
        pause_after_minutes=15,
        delete_after_minutes=120,
        pre_hibernate_command="python save.py",
        pre_hibernate_timeout_seconds=60,
        pre_hibernate_on_failure="continue",
    )
    response = await api.call("GET", f"/api/instances/{machine_id}/config")
    assert response.json() == {
        "success": True,
        "instance_id": machine_id,
        "auto_hibernation": {
            "enabled": False,
            "pause_after_minutes": 15,
            "delete_after_minutes": 120,
            "gpu_usage_threshold": 12.5,
        },
        "pre_hibernate": {
            "command": "python save.py",
            "timeout_seconds": 60,
            "on_failure": "continue",
        },
        "pause": {"hibernate_after_minutes": 24 * 60},
    }


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"max_price": 0}, "max_price", "greater than 0"),
        ({"max_price": -0.5}, "max_price", "greater than 0"),
        ({"max_price": "0.5"}, "max_price", "valid number"),
        ({"region": "Atlantis"}, "region", "unknown region"),
        ({"region": 7}, "region", "valid string"),
        ({"gpu_type": ""}, "gpu_type", "at least 1 character"),
        ({"gpu_type": "  "}, "gpu_type", "must not be blank"),
        ({"gpu": "RTX 4090"}, "gpu", "Extra inputs are not permitted"),
    ],
)
async def test_bad_wake_input_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str, words: str
) -> None:
    machine_id = add_machine(api, status="hibernated")
    response = await api.call("POST", f"/api/instances/{machine_id}/wake", json=body)
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith(f"{field}: ") and words in message, message
    assert (await api.call("GET", f"/api/instances/{machine_id}/events")).json() == {"events": []}


@pytest.mark.parametrize(
    ("body", "field"), [({"reason": "x" * 501}, "reason"), ({"why": "idle"}, "why")]
)
async def test_bad_hibernate_input_is_422(api: Api, body: dict[str, Any], field: str) -> None:
    machine_id = add_machine(api)
    response = await api.call("POST", f"/api/instances/{machine_id}/hibernate", json=body)
    assert response.status_code == 422
    assert response.json()["message"].startswith(f"{field}: ")


@pytest.mark.parametrize("limit", [0, 501, "ten"])
async def test_events_limit_is_checked(api: Api, limit: object) -> None:
    machine_id = add_machine(api)
    response = await api.call("GET", f"/api/instances/{machine_id}/events", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["message"].startswith("limit: ")


async def test_actions_on_a_destroyed_machine_conflict(api: Api) -> None:
    machine_id = add_machine(api, status="destroyed")
    for method, path, body in [
        ("PUT", "config", {"pause_after_minutes": 5}),
        ("POST", "hibernate", None),
        ("POST", "wake", None),
    ]:
        response = await api.call(method, f"/api/instances/{machine_id}/{path}", json=body)
        assert (response.status_code, response.json()["detail"]) == (409, "machine is destroyed")


# --- ownership ------------------------------------------------------------------------------


async def test_another_owners_machine_answers_404_on_every_route(api: Api) -> None:
    machine_id = add_machine(api)
    add_snapshot(api, machine_id, "snap-alice", committed_at=datetime.now(UTC))
    before = config_row(api, machine_id)
    for method, template in NEW_ROUTES:
        body = {"pause_after_minutes": 9} if method == "PUT" else None
        theirs = await api.call(method, template.format(id=machine_id), token=api.bob, json=body)
        missing = await api.call(method, template.format(id="vast_nope"), token=api.bob, json=body)
        assert (theirs.status_code, missing.status_code) == (404, 404), (method, template)
        assert theirs.json()["detail"] == f"machine {machine_id} not found"
    assert config_row(api, machine_id) == before
    # Even invalid input from bob answers as if the machine did not exist.
    bad = await api.call("PUT", f"/api/instances/{machine_id}/config", token=api.bob, json={"x": 1})
    assert bad.status_code == 404


async def test_without_temporal_updates_are_503_and_change_nothing(
    api_without_temporal: Api,
) -> None:
    api = api_without_temporal
    machine_id = add_machine(api)
    before = config_row(api, machine_id)
    for method, path, body in [
        ("PUT", "config", {"pause_after_minutes": 5}),
        ("POST", "hibernate", None),
        ("POST", "wake", {"max_price": 1.0}),
    ]:
        response = await api.call(method, f"/api/instances/{machine_id}/{path}", json=body)
        assert response.status_code == 503, (path, response.text)
        assert "Temporal is unreachable" in response.json()["detail"]
    progress = await api.call("GET", f"/api/v1/machines/{machine_id}/progress")
    assert progress.status_code == 503
    assert config_row(api, machine_id) == before
    # Reads from the database still work.
    status = await api.call("GET", f"/api/instances/{machine_id}/status")
    assert status.status_code == 200 and status.json()["status"] == "running"


# --- reads ----------------------------------------------------------------------------------


async def test_events_are_newest_first_with_the_seeds_fields(api: Api) -> None:
    machine_id = add_machine(api)
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    rows: list[tuple[str, str | None, dict[str, Any]]] = [
        ("created", None, {}),
        ("idle", None, {"gpu_utilization": 1.5}),
        ("hibernating", "idle for 3 minutes", {"gpu_utilization": 1.5}),
        ("hibernated", None, {"snapshot_id": "snap-1", "seq": 4}),
    ]
    with session_scope(api.engine) as session:
        for n, (kind, reason, data) in enumerate(rows):
            session.add(
                Event(
                    machine_id=machine_id,
                    owner_id=api.alice_id,
                    event_type=kind,
                    state=kind,
                    reason=reason,
                    data=data,
                    timestamp=start + timedelta(minutes=n),
                )
            )
    response = await api.call("GET", f"/api/instances/{machine_id}/events")
    events = response.json()["events"]
    assert events[0] == {
        "event_type": "hibernated",
        "timestamp": "2026-11-22T09:03:00Z",
        "gpu_utilization": None,
        "snapshot_id": "snap-1",
        "reason": None,
    }
    assert [e["event_type"] for e in events] == ["hibernated", "hibernating", "idle", "created"]
    assert events[1]["reason"] == "idle for 3 minutes" and events[1]["gpu_utilization"] == 1.5
    latest = await api.call("GET", f"/api/instances/{machine_id}/events", params={"limit": 1})
    assert latest.json()["events"] == events[:1]


async def test_status_adds_idle_since_snapshot_and_savings(api: Api) -> None:
    idle_since = datetime.now(UTC) - timedelta(minutes=2)
    machine_id = add_machine(
        api, status="idle", idle_since=idle_since, instance_id="1234", gpu_utilization=0.5
    )
    status = (await api.call("GET", f"/api/instances/{machine_id}/status")).json()
    assert set(status) == {
        "instance_id", "status", "gpu_utilization", "last_activity", "auto_hibernation",
        "vast_info", "idle_since", "snapshot_id", "savings",
    }  # fmt: skip
    assert status["vast_info"]["instance_id"] == 1234
    assert datetime.fromisoformat(status["idle_since"]) == idle_since
    assert status["snapshot_id"] is None
    assert status["savings"] == {
        "hibernated_hours": 0.0,
        "paused_hours": 0.0,
        "cost_avoided_usd": 0.0,
        "disk_cost_usd": 0.0,
        "storage_cost_usd": 0.0,
        "net_usd": 0.0,
    }


async def test_savings_of_a_hibernated_machine(api: Api) -> None:
    """Ten closed hours that saved $4, plus an open period of about two hours at $0.50/h,
    less 146 GB stored for those twelve hours ($0.015/GB-month: $0.036)."""
    machine_id = add_machine(
        api,
        status="hibernated",
        instance_id=None,
        hibernated_seconds=10 * 3600,
        hibernated_cost_avoided=4.0,
        hibernated_since=datetime.now(UTC) - timedelta(hours=2),
        hibernated_price_per_hour=0.5,
        snapshot_id="snap-new",
    )
    # Two snapshots sharing a pack: it counts once. A pending snapshot's pack does not count.
    add_snapshot(
        api, machine_id, "snap-old", committed_at=datetime.now(UTC), packs=[("p1", 100 * GB)]
    )
    add_snapshot(
        api,
        machine_id,
        "snap-new",
        committed_at=datetime.now(UTC),
        packs=[("p1", 100 * GB), ("p2", 46 * GB)],
    )
    add_snapshot(api, machine_id, "snap-pending", status="pending", packs=[("p3", 999 * GB)])
    status = (await api.call("GET", f"/api/instances/{machine_id}/status")).json()
    savings = status["savings"]
    assert status["snapshot_id"] == "snap-new"
    assert savings["hibernated_hours"] == pytest.approx(12, abs=0.01)
    assert savings["cost_avoided_usd"] == pytest.approx(5.0, abs=0.01)
    assert savings["storage_cost_usd"] == pytest.approx(146 * 0.015 * 12 / 730, abs=0.001)
    assert savings["net_usd"] == pytest.approx(
        savings["cost_avoided_usd"] - savings["storage_cost_usd"], abs=1e-5
    )
    listed = {m["id"]: m for m in (await api.call("GET", "/api/v1/machines")).json()}
    assert listed[machine_id]["savings_usd"] == pytest.approx(savings["net_usd"], abs=0.01)
    shown = (await api.call("GET", f"/api/v1/machines/{machine_id}")).json()
    assert shown["savings_usd"] == pytest.approx(savings["net_usd"], abs=0.01)


async def test_stats_count_the_callers_machines_that_are_not_destroyed(api: Api) -> None:
    for state in ("running", "running", "idle", "hibernated", "deleted", "stopped", "destroyed"):
        add_machine(api, status=state)
    add_machine(
        api,
        status="hibernated",
        hibernated_seconds=3600,
        hibernated_cost_avoided=0.75,
    )
    # Paused two hours of a machine that ran at $0.50/h, its stopped disk billing $0.05.
    add_machine(
        api, status="paused", paused_seconds=7200, paused_cost_avoided=1.0, paused_disk_cost=0.05
    )
    add_machine(api, owner_id=api.bob_id, status="hibernated", hibernated_cost_avoided=100.0)
    stats = (await api.call("GET", "/api/hibernation/stats")).json()
    assert stats == {
        "total_instances": 8,
        "running": 2,
        "idle": 1,
        "hibernated": 2,
        "deleted": 1,
        "paused": 1,
        "savings_usd": 0.75 + 0.95,
    }
    bobs = (await api.call("GET", "/api/hibernation/stats", token=api.bob)).json()
    assert (bobs["total_instances"], bobs["hibernated"], bobs["savings_usd"]) == (1, 1, 100.0)


async def test_stats_of_a_user_without_machines(api: Api) -> None:
    stats = (await api.call("GET", "/api/hibernation/stats")).json()
    assert stats == {
        "total_instances": 0,
        "running": 0,
        "idle": 0,
        "hibernated": 0,
        "deleted": 0,
        "paused": 0,
        "savings_usd": 0.0,
    }


async def test_snapshots_lists_committed_ones_newest_first_with_their_cost(api: Api) -> None:
    machine_id = add_machine(api)
    other = add_machine(api)
    now = datetime.now(UTC)
    add_snapshot(api, machine_id, "s-old", committed_at=now - timedelta(hours=2), packs=[("a", GB)])
    add_snapshot(api, machine_id, "s-new", committed_at=now, packs=[("a", GB), ("b", 2 * GB)])
    add_snapshot(api, machine_id, "s-pending", status="pending", packs=[("c", GB)])
    add_snapshot(api, machine_id, "s-expired", status="expired", committed_at=now)
    add_snapshot(api, other, "s-other", committed_at=now, packs=[("d", GB)])
    response = await api.call("GET", f"/api/v1/machines/{machine_id}/snapshots")
    snapshots = response.json()
    assert [s["id"] for s in snapshots] == ["s-new", "s-old"]
    newest = snapshots[0]
    assert set(newest) == {
        "id", "created_at", "committed_at", "files", "size_bytes", "stored_bytes",
        "uploaded_bytes", "root_hash", "cost_per_month_usd",
    }  # fmt: skip
    assert (newest["files"], newest["size_bytes"], newest["stored_bytes"]) == (3, 3 * GB, 3 * GB)
    assert newest["uploaded_bytes"] == 3 * GB // 2 and newest["root_hash"] == "ab" * 32
    assert newest["cost_per_month_usd"] == pytest.approx(3 * 0.015)
    assert snapshots[1]["cost_per_month_usd"] == pytest.approx(0.015)
    empty = await api.call("GET", f"/api/v1/machines/{add_machine(api)}/snapshots")
    assert empty.json() == []


async def test_progress_of_a_machine_doing_nothing(api: Api) -> None:
    """A machine whose workflow runs (no worker picks it up here) has nothing in flight."""
    created = await api.call(
        "POST",
        "/api/v1/machines",
        json={"gpu_name": "RTX 3090", "image": "ubuntu:22.04", "disk_gb": 20},
    )
    machine_id = created.json()["id"]
    progress = (await api.call("GET", f"/api/v1/machines/{machine_id}/progress")).json()
    assert progress == {
        "state": "starting",
        "operation": None,
        "phase": None,
        "files": 0,
        "bytes_scanned": 0,
        "bytes_uploaded": 0,
        "bytes_downloaded": 0,
    }
