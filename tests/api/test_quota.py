"""The per-owner machine quota (DUMONT_MAX_MACHINES_PER_OWNER): a create or a wake that would
pass it is a 409 saying the limit, and writes, starts and rents nothing. Machines without an
instance (hibernated, deleted, destroyed) do not count; another owner's never do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from core.db import session_scope
from core.models import Event, Machine
from core.settings import Settings
from tests.api.conftest import Api, make_settings, running_api, temporal_address
from tests.api.test_hibernation_routes import add_machine
from tests.api.test_machines_input import VALID

LIMIT = 2


@pytest.fixture
async def api(tmp_path: Path, db_url: str, dev_env: WorkflowEnvironment) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path, db_url, temporal_address(dev_env), max_machines_per_owner=LIMIT
    )
    async with running_api(settings) as a:
        yield a


def test_the_default_quota_is_50() -> None:
    assert Settings(_env_file=None).max_machines_per_owner == 50  # type: ignore[call-arg]


async def test_a_create_past_the_quota_is_409_saying_the_limit(api: Api) -> None:
    for _ in range(LIMIT):
        assert (await api.call("POST", "/api/v1/machines", json=VALID)).status_code == 201
    refused = await api.call("POST", "/api/v1/machines", json=VALID)
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "machine quota reached: you have 2 live machines and the limit is 2 per "
        "owner; destroy or hibernate one first"
    }
    assert (api.count(Machine), api.count(Event)) == (LIMIT, LIMIT)
    # Bob has his own quota.
    assert (await api.call("POST", "/api/v1/machines", token=api.bob, json=VALID)).is_success


async def test_machines_without_an_instance_do_not_count(api: Api) -> None:
    for status in ("hibernated", "deleted", "destroyed", "destroyed"):
        add_machine(api, status=status)
    add_machine(api, status="stopped")  # it keeps its host: it counts
    assert (await api.call("POST", "/api/v1/machines", json=VALID)).status_code == 201
    assert (await api.call("POST", "/api/v1/machines", json=VALID)).status_code == 409


async def test_a_wake_past_the_quota_is_409_and_asks_no_machine(api: Api) -> None:
    asleep = add_machine(api, status="hibernated", snapshot_id="snap-1")
    add_machine(api, status="running")
    idle = add_machine(api, status="idle")
    refused = await api.call("POST", f"/api/instances/{asleep}/wake", json={})
    assert refused.status_code == 409
    assert "the limit is 2 per owner" in refused.json()["detail"]
    with session_scope(api.engine) as session:
        machine = session.get(Machine, idle)
        assert machine is not None
        machine.status = "destroyed"
    # Under the quota, the wake goes on to the machine's workflow (none runs here).
    passed = await api.call("POST", f"/api/instances/{asleep}/wake", json={})
    assert passed.status_code == 404
