"""Heartbeats' `sync` block: stored on the machine, refused when bad (422 naming the field), and
turned into `standby_sync` signals on health transitions only (healthy <-> failing), counted in
the workflow's history on the real Temporal dev server."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.contracts.standby import SyncHealth, SyncReport
from core.models import MetricSample
from tests.ingest.conftest import AgentApi
from tests.ingest.helpers import iso, report
from tests.ingest.test_transitions import _listening_workflow

TARGET = "dumont@10.1.2.3:22"


def sync_block(
    last_success_at: datetime | None, failures: int = 0, error: str | None = None, **more: Any
) -> dict[str, Any]:
    return {
        "last_success_at": None if last_success_at is None else iso(last_success_at),
        "last_duration_seconds": 1.25,
        "last_bytes_sent": 4096,
        "consecutive_failures": failures,
        "error": error,
        "target": TARGET,
        **more,
    }


async def _sync_signals(client: Client, handle: WorkflowHandle) -> list[SyncReport]:
    reports = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attributes = event.workflow_execution_signaled_event_attributes
            if attributes.signal_name == "standby_sync":
                payloads = attributes.input.payloads
                [sync] = await client.data_converter.decode(payloads, [SyncReport])
                reports.append(sync)
    return reports


async def test_the_sync_figures_are_stored_with_the_heartbeat(agent_api_any_db: AgentApi) -> None:
    a = agent_api_any_db
    synced_at = a.clock() - timedelta(seconds=4)
    big = 5 * 2**40  # a first sync of a 5 TiB workspace: past 32 bits
    response = await a.report(sync=sync_block(synced_at, last_bytes_sent=big))
    assert response.status_code == 200, response.text
    row = a.machine_row()
    assert row.sync_last_success_at == synced_at
    assert (row.sync_seconds, row.sync_bytes, row.sync_failures, row.sync_error) == (
        1.25,
        big,
        0,
        None,
    )
    assert row.sync_health == "healthy"

    a.clock.advance(30)
    await a.report(sync=sync_block(synced_at, failures=1, error="rsync exited 12: refused"))
    row = a.machine_row()
    assert (row.sync_failures, row.sync_error) == (1, "rsync exited 12: refused")
    assert row.sync_last_success_at == synced_at  # the standby still holds that sync

    # No block any more (the sync was unlinked): nothing is shown, and nothing is told.
    a.clock.advance(30)
    await a.report()
    row = a.machine_row()
    assert (row.sync_last_success_at, row.sync_failures, row.sync_health) == (None, None, None)


async def test_only_health_transitions_are_signalled(
    agent_api: AgentApi, dev_env: WorkflowEnvironment
) -> None:
    a = agent_api
    handle = await _listening_workflow(dev_env.client, a.machine.id)
    times: list[datetime] = []

    async def beat(success: datetime | None, failures: int = 0, error: str | None = None) -> None:
        response = await a.report(sync=sync_block(success, failures, error))
        assert response.status_code == 200, response.text
        times.append(a.clock())
        a.clock.advance(30)

    await beat(None)  # linked, nothing synced yet: unknown, nothing to say
    first = a.clock() - timedelta(seconds=3)
    await beat(first)  # -> healthy (1)
    for _ in range(5):  # a sync every heartbeat: healthy still
        await beat(a.clock() - timedelta(seconds=3))
    last_good = a.clock() - timedelta(seconds=33)
    await beat(last_good)  # no sync since the previous report: nothing new
    await beat(last_good, 1, "rsync exited 12: Connection refused")  # one failure is noise
    for failures in (2, 3, 4, 5):  # -> failing (2), once
        await beat(last_good, failures, "rsync exited 12: Connection refused")
    await beat(last_good, 0)  # no new success yet: still failing
    back = a.clock() - timedelta(seconds=1)
    await beat(back)  # -> healthy (3)
    for _ in range(4):
        await beat(a.clock() - timedelta(seconds=2))
    # A report delivered twice (its answer was lost) says nothing new.
    a.clock.advance(-30)
    await a.report(sync=sync_block(a.clock() - timedelta(seconds=2)))

    told = await _sync_signals(dev_env.client, handle)
    assert [s.health for s in told] == [SyncHealth.HEALTHY, SyncHealth.FAILING, SyncHealth.HEALTHY]
    healthy, failing, again = told
    assert (healthy.at, healthy.last_success_at, healthy.error) == (times[1], first, None)
    assert failing.at == times[9] and failing.last_success_at == last_good
    assert failing.error == "rsync exited 12: Connection refused"
    assert failing.instance_id is None
    assert (again.at, again.last_success_at, again.error) == (times[14], back, None)
    assert a.machine_row().sync_health == "healthy"


async def test_a_sync_signal_that_could_not_be_delivered_is_sent_with_the_next_report(
    agent_api: AgentApi, dev_env: WorkflowEnvironment
) -> None:
    a = agent_api
    handle = await _listening_workflow(dev_env.client, a.machine.id)
    original = a.ingest.writer.sync_signal
    failures: list[object] = []

    async def unreachable(transition: object) -> None:
        failures.append(transition)
        raise RuntimeError("Temporal is down")

    a.ingest.writer.sync_signal = unreachable
    await a.report(sync=sync_block(a.clock(), failures=0))
    assert len(failures) == 3  # attempts
    assert a.machine_row().sync_health is None  # forgotten: told nothing
    a.ingest.writer.sync_signal = original
    a.clock.advance(30)
    await a.report(sync=sync_block(a.clock(), failures=2, error="boom"))
    a.clock.advance(30)
    await a.report(sync=sync_block(a.clock() - timedelta(seconds=40), failures=3, error="boom"))
    assert [s.health for s in await _sync_signals(dev_env.client, handle)] == [SyncHealth.FAILING]


def _bad_syncs(now: datetime) -> dict[str, tuple[Any, str]]:
    good = sync_block(now)
    return {
        "error over 2000 characters": ({**good, "error": "x" * 2001}, "sync.error"),
        "negative failures": ({**good, "consecutive_failures": -1}, "sync.consecutive_failures"),
        "failures not a number": (
            {**good, "consecutive_failures": "many"},
            "sync.consecutive_failures",
        ),
        "negative bytes": ({**good, "last_bytes_sent": -5}, "sync.last_bytes_sent"),
        "negative seconds": (
            {**good, "last_duration_seconds": -0.5},
            "sync.last_duration_seconds",
        ),
        "a success in the future": (
            {**good, "last_success_at": iso(now + timedelta(minutes=6))},
            "sync.last_success_at",
        ),
        "not a time": ({**good, "last_success_at": "yesterday"}, "sync.last_success_at"),
        "target too long": ({**good, "target": "h" * 301}, "sync.target"),
        "a NUL in the error": ({**good, "error": "bad\u0000"}, "sync.error"),
        "not an object": ("healthy", "sync"),
    }


@pytest.mark.parametrize("case", list(_bad_syncs(datetime.now())))
async def test_a_bad_sync_block_is_refused_naming_the_field(agent_api: AgentApi, case: str) -> None:
    a = agent_api
    body, field = _bad_syncs(a.clock())[case]
    response = await a.post(report(a.machine.id, a.clock(), sync=body))
    await a.ingest.writer.flush()
    assert response.status_code == 422, response.text
    answer = response.json()
    assert field in answer["message"], answer
    assert "x" * 100 not in json.dumps(answer)  # the input is not echoed back
    assert a.count(MetricSample) == 0
    assert a.machine_row().last_report_at is None
