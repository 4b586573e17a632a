"""`POST /api/agent/status`: what is stored, what is refused (and then nothing is stored), and
what the seed's status route shows afterwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.agent_tokens import issue_agent_token
from core.db import session_scope
from core.models import MetricSample, metric_rollups
from tests.ingest.conftest import AgentApi
from tests.ingest.helpers import add_machine, agent_token, iso, report

SEED_RESPONSE = {"success": True, "commands": [], "hibernate_in_seconds": None}


async def test_a_report_shows_in_the_seed_status_shape(agent_api_any_db: AgentApi) -> None:
    a = agent_api_any_db
    typed_at = a.clock() - timedelta(seconds=10)
    response = await a.report(gpu=85.0, last_activity=iso(typed_at))
    assert response.status_code == 200, response.text
    assert response.json() == {**SEED_RESPONSE, "next_heartbeat_in": 30, "accepted": 1}
    assert a.count(MetricSample) == 1

    status = await a.api.call("GET", f"/api/instances/{a.machine.id}/status")
    assert status.status_code == 200
    assert status.json() == {
        "instance_id": a.machine.id,
        "status": "running",
        "gpu_utilization": 85.0,
        "last_activity": iso(a.clock()),  # the GPU was busy when the report was taken
        "auto_hibernation": {
            "enabled": True,
            "pause_after_minutes": 3,
            "delete_after_minutes": 30,
            "gpu_usage_threshold": 5.0,
        },
        "vast_info": {"instance_id": 12345, "gpu_type": "RTX 3090", "region": "US"},
        # Dumont's additions to the seed's shape: never idle, never hibernated yet.
        "idle_since": None,
        "snapshot_id": None,
        "savings": {
            "hibernated_hours": 0.0,
            "paused_hours": 0.0,
            "cost_avoided_usd": 0.0,
            "disk_cost_usd": 0.0,
            "storage_cost_usd": 0.0,
            "net_usd": 0.0,
        },
    }
    machine = (await a.api.call("GET", f"/api/v1/machines/{a.machine.id}")).json()
    assert machine["gpu_utilization"] == 85.0 and machine["online"] is True
    assert machine["last_report_at"] is not None


async def test_the_seeds_minimal_payload_is_accepted(agent_api: AgentApi) -> None:
    seed = {
        "instance_id": agent_api.machine.id,
        "hostname": "gpu-001",
        "timestamp": iso(agent_api.clock()),
        "gpu_metrics": {
            "utilization_percent": 1,
            "memory_used_mb": 18432,
            "memory_total_mb": 24576,
            "temperature_celsius": 72,
            "power_watts": 320,
        },
        "process_count": 3,
        "active_users": 1,
        "last_activity": iso(agent_api.clock() - timedelta(seconds=15)),
        "agent_version": "1.2.0",
    }
    response = await agent_api.post(seed)
    await agent_api.ingest.writer.flush()
    assert response.status_code == 200
    status = await agent_api.api.call("GET", f"/api/instances/{agent_api.machine.id}/status")
    # GPU idle: the last activity is the last keystroke.
    assert status.json()["last_activity"] == seed["last_activity"]
    assert status.json()["gpu_utilization"] == 1


async def test_a_backlog_batch_is_stored_whole(agent_api: AgentApi) -> None:
    start = agent_api.clock() - timedelta(minutes=10)
    samples = [report(agent_api.machine.id, start + timedelta(seconds=30 * i)) for i in range(20)]
    response = await agent_api.post({"samples": samples})
    await agent_api.ingest.writer.flush()
    assert response.json()["accepted"] == 20
    assert agent_api.count(MetricSample) == 20


def _bad_bodies(machine_id: str, now: Any) -> dict[str, tuple[Any, int, str]]:
    good = report(machine_id, now)
    gpu = good["gpu_metrics"]
    without = {k: v for k, v in good.items() if k != "timestamp"}
    return {
        "missing timestamp": (without, 422, "timestamp"),
        "missing instance id": (
            {k: v for k, v in good.items() if k != "instance_id"},
            422,
            "instance_id",
        ),
        "wrong type": ({**good, "cpu_percent": "lots"}, 422, "cpu_percent"),
        "negative utilisation": (
            {**good, "gpu_metrics": {**gpu, "utilization_percent": -1}},
            422,
            "gpu_metrics.utilization_percent",
        ),
        "over 100 %": ({**good, "cpu_percent": 100.5}, 422, "cpu_percent"),
        "vram used > total": (
            {**good, "gpu_metrics": {**gpu, "memory_used_mb": 30000}},
            422,
            "memory_used_mb",
        ),
        "disk used > total": ({**good, "disk_used_gb": 101}, 422, "disk_used_gb"),
        "future timestamp": (
            {**good, "timestamp": iso(now + timedelta(minutes=6))},
            422,
            "timestamp",
        ),
        "one bad sample of a batch": (
            {"samples": [good, {**good, "active_users": -2}, good]},
            422,
            "samples.1.active_users",
        ),
        "batch over 500": ({"samples": [good] * 501}, 422, "samples"),
        "empty batch": ({"samples": []}, 422, "samples"),
        "not json": (b"{not json", 422, "json"),
        "not an object": ([good], 422, "object"),
        "body over 1 MiB": ({**good, "hostname": "x" * (1 << 20)}, 413, "1048576 bytes"),
    }


@pytest.mark.parametrize("case", list(_bad_bodies("m", datetime.now(UTC))))
async def test_a_bad_body_is_refused_and_nothing_is_stored(agent_api: AgentApi, case: str) -> None:
    body, code, says = _bad_bodies(agent_api.machine.id, agent_api.clock())[case]
    response = await agent_api.post(body)
    await agent_api.ingest.writer.flush()
    assert response.status_code == code, response.text
    assert says in json.dumps(response.json())
    assert agent_api.count(MetricSample) == 0
    assert agent_api.count(metric_rollups) == 0
    assert agent_api.machine_row().last_report_at is None


async def test_tokens_post_for_their_own_machine_only(agent_api: AgentApi) -> None:
    a = agent_api
    other = add_machine(a.api.engine, a.api.bob_id)
    other_token = agent_token(a.api.engine, other.id)
    body = report(a.machine.id, a.clock())
    refused = {
        "none": ({}, 401),
        "unknown agent token": ({"Authorization": "Bearer dma_nope"}, 401),
        "the owner's user token": (a.api.auth(a.api.alice), 401),
        "another machine's token": ({"Authorization": f"Bearer {other_token}"}, 403),
    }
    for name, (headers, code) in refused.items():
        response = await a.api.http.post("/api/agent/status", json=body, headers=headers)
        assert response.status_code == code, name
    await a.ingest.writer.flush()
    assert a.count(MetricSample) == 0
    assert (await a.post(report(other.id, a.clock()), token=other_token)).status_code == 200


async def test_a_reissued_token_revokes_the_previous_one(agent_api: AgentApi) -> None:
    a = agent_api
    assert (await a.report()).status_code == 200
    with session_scope(a.api.engine) as session:
        new_token = issue_agent_token(session, a.machine.id)
    # The API caches tokens for a few seconds; past that the old one is refused.
    cache = a.ingest.tokens
    later = cache.clock() + cache.ttl + 1
    cache.clock = lambda: later
    assert (await a.post(report(a.machine.id, a.clock()))).status_code == 401
    assert (await a.post(report(a.machine.id, a.clock()), token=new_token)).status_code == 200
    await a.ingest.writer.flush()
    assert a.count(MetricSample) == 2


async def test_a_machine_is_offline_after_three_silent_intervals(agent_api: AgentApi) -> None:
    a = agent_api
    await a.report(interval_seconds=20)

    async def shown() -> str:
        response = await a.api.call("GET", f"/api/instances/{a.machine.id}/status")
        return str(response.json()["status"])

    a.clock.advance(59)
    assert await shown() == "running"
    a.clock.advance(2)
    assert await shown() == "offline"
    await a.report(interval_seconds=20)
    assert await shown() == "running"


async def test_someone_elses_machine_is_not_found(agent_api: AgentApi) -> None:
    a = agent_api
    await a.report()
    for path in (
        f"/api/instances/{a.machine.id}/status",
        f"/api/v1/machines/{a.machine.id}/metrics",
    ):
        assert (await a.api.call("GET", path, token=a.api.bob)).status_code == 404
        assert (await a.api.call("GET", path)).status_code == 200


async def test_the_metrics_route_shows_reported_values(agent_api: AgentApi) -> None:
    a = agent_api
    await a.report(gpu=40.0)
    a.clock.advance(30)
    await a.report(gpu=60.0)
    path = f"/api/v1/machines/{a.machine.id}/metrics"
    body = (await a.api.call("GET", path, params={"range": "24h", "series": "gpu,vram"})).json()
    assert body["machine_id"] == a.machine.id and body["step_seconds"] == 300
    assert set(body["series"]) == {"gpu_utilization", "gpu_memory_used_mb", "gpu_memory_total_mb"}
    points = [p for p in body["series"]["gpu_utilization"] if p[1] is not None]
    assert len(body["series"]["gpu_utilization"]) == 288
    assert [p[1:] for p in points] in ([[50.0, 60.0]], [[40.0, 40.0], [60.0, 60.0]])
    bad = await a.api.call("GET", path, params={"series": "gpu,temperature"})
    assert bad.status_code == 422 and "temperature" in str(bad.json()["detail"])
    assert (await a.api.call("GET", path, params={"range": "1y"})).status_code == 422
