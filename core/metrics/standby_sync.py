"""The standby sync as heartbeats report it: the newest figures on the machine's row, and the
transitions of its health (healthy <-> failing) that the machine workflow hears as
`standby_sync` signals. The agent syncs every 30 s; the workflow hears only of changes.

- healthy: a sync completed since the previous report, and no attempt failed after it;
- failing: two attempts in a row failed (one is noise: a blip of the network);
- anything else (no new sync yet, one failure) changes nothing.

As for `agent_online` (core/metrics/liveness.py), the database arbitrates: a transition is the
conditional UPDATE of `sync_health` from the value read in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.engine import Engine

from core.contracts.standby import SyncHealth, SyncReport
from core.metrics.bulk import BulkStatement
from core.metrics.liveness import Heartbeat, SyncFigures
from core.models import Machine

# The signal's name on MachineWorkflow; its argument is a SyncReport.
STANDBY_SYNC_SIGNAL = "standby_sync"
FAILING_AFTER = 2  # consecutive failed attempts

_machines = Machine.__table__  # type: ignore[attr-defined]
_FIGURES = ("sync_last_success_at", "sync_seconds", "sync_bytes", "sync_failures", "sync_error")
_UPDATE_FIGURES = BulkStatement(
    _machines,
    lambda _: (
        update(_machines)
        .where(_machines.c.id == bindparam("b_id"))
        .values({name: bindparam(name) for name in _FIGURES})
    ),
)


@dataclass(frozen=True, slots=True)
class SyncTransition:
    machine_id: str
    report: SyncReport


def reported_health(figures: SyncFigures, previous_success: datetime | None) -> SyncHealth | None:
    """What this report says of the sync's health; None: nothing new."""
    if figures.failures >= FAILING_AFTER:
        return SyncHealth.FAILING
    newer = figures.last_success_at is not None and (
        previous_success is None or figures.last_success_at > previous_success
    )
    if newer and figures.failures == 0:
        return SyncHealth.HEALTHY
    return None


def _flip(conn: Connection, machine_id: str, was: str | None, now: str | None) -> bool:
    told = _machines.c.sync_health
    result = conn.execute(
        update(_machines)
        .where(_machines.c.id == machine_id, told.is_(None) if was is None else told == was)
        .values(sync_health=now)
    )
    return result.rowcount == 1


def record_sync(conn: Connection, beats: Sequence[Heartbeat]) -> list[SyncTransition]:
    """Store the beats' sync figures and return the health transitions to signal. Runs on the
    heartbeat batch's write transaction, after `record_heartbeats`."""
    if not beats:
        return []
    rows = conn.execute(
        select(
            _machines.c.id,
            _machines.c.sync_last_success_at,
            _machines.c.sync_failures,
            _machines.c.sync_health,
        ).where(_machines.c.id.in_([beat.machine_id for beat in beats]))
    ).all()
    known = {row.id: row for row in rows}
    values: list[dict[str, Any]] = []
    transitions: list[SyncTransition] = []
    for beat in beats:
        row = known.get(beat.machine_id)
        if row is None:
            continue
        figures = beat.sync
        if figures is None:
            # No sync any more (unlinked, or a new GPU not linked yet): forget the old one,
            # so that the next link's first healthy sync is a transition again.
            if row.sync_failures is not None or row.sync_health is not None:
                values.append(_figures_row(beat.machine_id, None))
                _flip(conn, beat.machine_id, row.sync_health, None)
            continue
        values.append(_figures_row(beat.machine_id, figures))
        health = reported_health(figures, row.sync_last_success_at)
        if health is None or health.value == row.sync_health:
            continue
        if _flip(conn, beat.machine_id, row.sync_health, health.value):
            report = SyncReport(
                health=health,
                at=beat.sample_time,
                instance_id=None,
                last_success_at=figures.last_success_at,
                error=figures.error if health is SyncHealth.FAILING else None,
            )
            transitions.append(SyncTransition(beat.machine_id, report))
    _UPDATE_FIGURES.execute(conn, values)
    return transitions


def _figures_row(machine_id: str, figures: SyncFigures | None) -> dict[str, Any]:
    return {
        "b_id": machine_id,
        "sync_last_success_at": figures.last_success_at if figures else None,
        "sync_seconds": figures.seconds if figures else None,
        "sync_bytes": figures.bytes_sent if figures else None,
        "sync_failures": figures.failures if figures else None,
        "sync_error": figures.error if figures else None,
    }


def forget_told_sync(engine: Engine, transition: SyncTransition) -> None:
    """After a `standby_sync` signal could not be delivered: the told health goes back to
    unknown, so the next report that says the same is a transition again."""
    with engine.begin() as conn:
        _flip(conn, transition.machine_id, transition.report.health.value, None)
