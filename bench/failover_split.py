"""Where a failover's time goes, from the machine workflow's history: each activity's run
(started -> closed) put in a bucket (the provider's API calls and boot, data moved between the
machines, Dumont's setup on them), and the moment the fleet monitor's silence signal arrived.
What no activity of those buckets covers is Dumont's own orchestration (workflow tasks, the
outbox, signals, queueing for a worker slot). Used by failover.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from core.contracts import machine_workflow_id
from core.contracts.activities import ActivityName as A

# Calls to the provider's API; WAIT_UNTIL_READY holds the sim's boot delay.
PROVIDER = frozenset(
    {
        A.CHECK_INSTANCE,
        A.DESTROY_INSTANCES,
        A.PROVISION_INSTANCE,
        A.WAIT_UNTIL_READY,
        A.STOP_INSTANCE,
        A.START_INSTANCE,
    }
)
# The workspace moving (rsync standby -> GPU and its verification; a sync run on demand).
DATA = frozenset({A.RESTORE_FROM_STANDBY, A.SYNC_NOW})
# Dumont's own work on the machines over SSH: keys, the agent, the sync's direction.
SETUP = frozenset({A.ATTACH_SSH_KEYS, A.INSTALL_AGENT, A.LINK_STANDBY, A.UNLINK_STANDBY})
BUCKETS = {"provider": PROVIDER, "data": DATA, "setup": SETUP}

_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
}

Span = tuple[float, float]


def _at(event: object) -> float:
    return event.event_time.ToDatetime(tzinfo=UTC).timestamp()  # type: ignore[attr-defined]


@dataclass
class History:
    runs: list[tuple[str, Span]]  # (activity type, started -> closed), epoch seconds
    signals: list[tuple[str, float]]  # (signal name, received)


async def read_history(client: Client, workflow_id: str) -> History:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names: dict[int, str] = {}
    started: dict[int, float] = {}
    runs: list[tuple[str, Span]] = []
    signals: list[tuple[str, float]] = []
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            names[event.event_id] = attrs.activity_type.name
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = _at(event)
        elif kind in _CLOSED:
            scheduled = getattr(event, _CLOSED[kind]).scheduled_event_id
            if scheduled in started:
                runs.append((names[scheduled], (started[scheduled], _at(event))))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            name = event.workflow_execution_signaled_event_attributes.signal_name
            signals.append((name, _at(event)))
    return History(runs, signals)


async def machine_history(client: Client, machine_id: str) -> History:
    return await read_history(client, machine_workflow_id(machine_id))


def _union(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _minus(spans: list[Span], taken: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in spans:
        pieces = [(start, end)]
        for t0, t1 in taken:
            pieces = [
                part
                for a, b in pieces
                for part in ((a, min(b, t0)), (max(a, t1), b))
                if part[1] > part[0]
            ]
        out.extend(pieces)
    return out


def split(history: History, start: float, end: float) -> dict[str, float]:
    """Seconds of [start, end] per bucket; an overlap counts once, in the first bucket
    (provider, then data, then setup); "dumont" is the rest."""
    taken: list[Span] = []
    seconds: dict[str, float] = {}
    for bucket, names in BUCKETS.items():
        spans = [
            (max(a, start), min(b, end))
            for name, (a, b) in history.runs
            if name in names and b > start and a < end
        ]
        own = _minus(_union(spans), taken)
        seconds[bucket] = sum(b - a for a, b in own)
        taken = _union(taken + own)
    seconds["dumont"] = (end - start) - sum(seconds.values())
    return seconds


def first_signal(history: History, name: str, after: float) -> float | None:
    return next((at for n, at in history.signals if n == name and at >= after), None)


def ran(history: History, start: float, end: float) -> list[tuple[str, float]]:
    """Each activity run that began in [start, end], with its seconds, in order."""
    return [
        (n, b - a) for n, (a, b) in sorted(history.runs, key=lambda r: r[1]) if start <= a <= end
    ]


def iso(at: datetime | str | None) -> float | None:
    if at is None:
        return None
    value = datetime.fromisoformat(at) if isinstance(at, str) else at
    return value.timestamp()
