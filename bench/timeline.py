"""Where a machine's time to running goes: every activity of its workflow's history, split into
the wait for a worker slot (scheduled → started) and the run (started → closed), and the gaps
between them (workflow tasks, timers, the outbox). Used by `lifecycle.py --where`."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from core.contracts import machine_workflow_id

_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
}


def _at(event: object) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]


async def activity_spans(
    client: Client, machine_id: str, since: datetime | None = None
) -> list[tuple[str, float, float]]:
    """(activity type, seconds waiting for a worker, seconds running) of every activity in the
    history so far (scheduled at `since` or later), in order. Server-side retries are inside
    one span."""
    history = await client.get_workflow_handle(machine_workflow_id(machine_id)).fetch_history()
    scheduled: dict[int, tuple[str, datetime]] = {}
    started: dict[int, datetime] = {}
    spans: list[tuple[str, float, float]] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if since is not None and _at(event) < since:
                continue
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = (name, _at(event))
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = _at(event)
        elif event.event_type in _CLOSED:
            attrs = getattr(event, _CLOSED[event.event_type])
            if attrs.scheduled_event_id not in scheduled:
                continue  # scheduled before `since`
            name, at = scheduled[attrs.scheduled_event_id]
            begun = started.get(attrs.scheduled_event_id, at)
            spans.append((name, (begun - at).total_seconds(), (_at(event) - begun).total_seconds()))
    return spans


async def print_where(temporal_address: str, ids: list[str]) -> None:
    client = await Client.connect(temporal_address)
    waits: dict[str, list[float]] = defaultdict(list)
    runs: dict[str, list[float]] = defaultdict(list)
    for machine_id in ids:
        per_type: dict[str, tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
        for name, wait, run in await activity_spans(client, machine_id):
            w, r = per_type[name]
            per_type[name] = (w + wait, r + run)  # retries of one activity add up
        for name, (wait, run) in per_type.items():
            waits[name].append(wait)
            runs[name].append(run)
    print(f"\n{'per machine, summed over tries':<34} {'wait p50':>9} {'run p50':>8} {'run p95':>8}")
    for name in sorted(runs, key=lambda n: -statistics.median(runs[n])):
        ordered = sorted(runs[name])
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(
            f"{name:<34} {statistics.median(waits[name]):8.2f}s"
            f" {statistics.median(runs[name]):7.2f}s {p95:7.2f}s"
        )
