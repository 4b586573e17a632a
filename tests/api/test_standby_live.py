"""The standby through the API, against the real machine workflow, worker and sims (a vast GPU,
a GCE standby): create with a `standby` block, read it, change it, migrate to the CPU (the
machine's ssh then points at the standby) and back, disable it, destroy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import Api, make_settings, running_api, temporal_address
from tests.api.test_machines_input import VALID
from tests.fixtures.sim import SimHandle
from tests.fixtures.worker import running_worker


@pytest.fixture
async def live_with_gcp(
    tmp_path: Path, sqlite_url: str, dev_env: WorkflowEnvironment, sim: SimHandle
) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        temporal_address(dev_env),
        vast_url=sim.url,
        vast_api_key=sim.api_key,
        gcp_project="api-standby",
        gcp_endpoint=sim.gce_url,
        gcp_credentials="anonymous",
        gcp_ssh_port=sim.gce_ssh_port,
        boot_timeout_seconds=120,
        provider_poll_seconds=0.5,
        heartbeat_timeout_seconds=5,
        agent_interval_seconds=5,
    )
    async with (
        running_api(settings) as api,
        running_worker(
            dev_env.client,
            settings,
            api.engine,
            max_heartbeat_throttle_interval=timedelta(milliseconds=500),
            default_heartbeat_throttle_interval=timedelta(milliseconds=500),
        ),
    ):
        yield api


async def until(api: Api, path: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(600):
        response = await api.call("GET", path)
        body = response.json()
        if response.status_code == 200 and check(body):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never matched: {body}")


async def test_standby_from_create_to_migration_and_back_through_the_api(
    live_with_gcp: Api,
) -> None:
    api = live_with_gcp
    body = {**VALID, "disk_gb": 20, "standby": {"machine_type": "e2-small", "disk_gb": 10}}
    created = await api.call("POST", "/api/v1/machines", json=body)
    assert created.status_code == 201, created.text
    machine = created.json()["id"]
    path = f"/api/v1/machines/{machine}/standby"
    standby = await until(
        api, path, lambda b: b["instance"] is not None and b["state"] == "running"
    )
    assert standby["config"]["machine_type"] == "e2-small" and standby["side"] == "gpu"
    assert standby["instance"]["price_per_hour"] > 0

    changed = await api.call("PUT", path, json={"sync_interval_seconds": 10})
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"]["sync_interval_seconds"] == 10
    assert changed.json()["config"]["machine_type"] == "e2-small"  # the rest kept
    bad = await api.call("PUT", path, json={"sync_interval_seconds": 1})
    assert bad.status_code == 422 and "sync_interval_seconds" in bad.text

    # The new interval relinks the sync; until then a move is refused, and says so.
    for _ in range(300):
        moved = await api.call("POST", f"/api/v1/machines/{machine}/migrate", json={"to": "cpu"})
        if moved.status_code != 409 or "not set up yet" not in moved.text:
            break
        await asyncio.sleep(0.2)
    assert moved.status_code == 200, moved.text
    on_cpu = await until(api, f"/api/v1/machines/{machine}", lambda m: m["status"] == "standby")
    assert on_cpu["ssh_user"] == "dumont" and on_cpu["provider"] == "vast"
    assert on_cpu["instance_id"] == standby["instance"]["instance_id"]  # ssh points there
    again = await api.call("POST", f"/api/v1/machines/{machine}/migrate", json={"to": "cpu"})
    assert again.status_code == 409 and "already on its standby" in again.text

    back = await api.call("POST", f"/api/v1/machines/{machine}/migrate", json={"to": "gpu"})
    assert back.status_code == 200, back.text
    await until(api, f"/api/v1/machines/{machine}", lambda m: m["status"] == "running")
    removed = await api.call("DELETE", path)
    assert removed.status_code == 200, removed.text
    await until(api, path, lambda b: b["instance"] is None)
    gone = await api.call("DELETE", f"/api/v1/machines/{machine}")
    assert gone.status_code in (200, 202), gone.text
