"""A machine's live agent state: the latest values shown by the API, and what the machine
workflow was last told. The workflow hears of TRANSITIONS only (online↔offline, busy↔idle);
a heartbeat that changes neither goes to the database alone (the Temporal dev server takes
~1,000 signals/s on 2 cores, the database far more).

The database arbitrates: a transition is the conditional UPDATE that flips the told state
(`agent_online`, `agent_busy`) from the value read in the same transaction, so two API workers
(or the API and the fleet monitor) never both signal one transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from core.contracts.agent import AgentReport
from core.contracts.states import MachineState
from core.metrics.bulk import BulkStatement
from core.models import Machine, MachineStandby

DEFAULT_INTERVAL_SECONDS = 30
OFFLINE_AFTER_INTERVALS = 3
# A machine with a standby is declared silent sooner: its workflow asks the provider before
# anything moves (a false alarm costs one provider read), and a lost GPU must be noticed
# within a minute (90 s + a monitor interval is up to two). 1.5 intervals still leave half
# an interval for a late heartbeat.
STANDBY_OFFLINE_AFTER_INTERVALS = 1.5
# States in which an agent is expected to report; silence there means offline.
REPORTING_STATES = frozenset({MachineState.RUNNING.value, MachineState.IDLE.value})

_machines = Machine.__table__  # type: ignore[attr-defined]
_standbys = MachineStandby.__table__  # type: ignore[attr-defined]
# A standby instance exists to fail over to (the sweep's shorter window is for these only).
_has_standby = and_(_standbys.c.enabled.is_(True), _standbys.c.instance_id.is_not(None))


_LIVE_COLUMNS = (
    "last_report_at",
    "gpu_utilization",
    "last_activity",
    "report_interval_seconds",
    "agent_version",
)
_UPDATE_LIVE = BulkStatement(
    _machines,
    lambda _: (
        update(_machines)
        .where(_machines.c.id == bindparam("b_id"))
        .values({name: bindparam(name) for name in _LIVE_COLUMNS})
    ),
)


@dataclass(frozen=True, slots=True)
class SyncFigures:
    """The standby sync's block of a report (core/metrics/standby_sync.py stores it)."""

    last_success_at: datetime | None
    seconds: float | None
    bytes_sent: int | None
    failures: int
    error: str | None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The newest report of one machine in a batch."""

    machine_id: str
    received_at: datetime
    sample_time: datetime
    gpu_utilization: float | None  # None: the GPU could not be read
    active_users: int | None
    last_input_at: datetime | None
    interval_seconds: int
    agent_version: str | None
    # None: the report had no sync block (no standby linked).
    sync: SyncFigures | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    machine_id: str
    report: AgentReport


def gpu_busy(utilization: float | None, threshold: float) -> bool | None:
    return None if utilization is None else utilization >= threshold


def is_busy(beat: Heartbeat, threshold: float) -> bool:
    """Fails safe: an unknown GPU reading is busy; so is a keystroke within the interval."""
    if gpu_busy(beat.gpu_utilization, threshold) is not False:
        return True
    window_start = beat.sample_time - timedelta(seconds=beat.interval_seconds)
    return beat.last_input_at is not None and beat.last_input_at >= window_start


def offline_after(interval_seconds: int | None, *, standby: bool = False) -> timedelta:
    intervals = STANDBY_OFFLINE_AFTER_INTERVALS if standby else OFFLINE_AFTER_INTERVALS
    return timedelta(seconds=(interval_seconds or DEFAULT_INTERVAL_SECONDS) * intervals)


def is_offline(machine: Machine, now: datetime) -> bool:
    """A machine that should be reporting and has not for three intervals."""
    if machine.status not in REPORTING_STATES:
        return False
    since = machine.last_report_at or machine.updated_at
    return now - since > offline_after(machine.report_interval_seconds)


def _newest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def _told_is(online: bool, busy: bool | None) -> ColumnElement[bool]:
    busy_clause = (
        _machines.c.agent_busy.is_(None) if busy is None else _machines.c.agent_busy == busy
    )
    return and_(_machines.c.agent_online == online, busy_clause)


def _flip(
    conn: Connection, machine_id: str, was: tuple[bool, bool | None], now: tuple[bool, bool | None]
) -> bool:
    """Set the told state if nobody changed it since it was read; True if this call did."""
    result = conn.execute(
        update(_machines)
        .where(_machines.c.id == machine_id, _told_is(*was))
        .values(agent_online=now[0], agent_busy=now[1])
    )
    return result.rowcount == 1


def record_heartbeats(conn: Connection, beats: Sequence[Heartbeat]) -> list[Transition]:
    """Update the machines' latest values and return the transitions to signal. Runs on the
    batch's write transaction (after its first write, so SQLite's write lock is held)."""
    if not beats:
        return []
    rows = conn.execute(
        select(
            _machines.c.id,
            _machines.c.gpu_usage_threshold,
            _machines.c.last_activity,
            _machines.c.agent_online,
            _machines.c.agent_busy,
        ).where(_machines.c.id.in_([beat.machine_id for beat in beats]))
    ).all()
    known = {row.id: row for row in rows}
    values: list[dict[str, Any]] = []
    transitions: list[Transition] = []
    for beat in beats:
        row = known.get(beat.machine_id)
        if row is None:  # deleted since its token was cached
            continue
        gpu = gpu_busy(beat.gpu_utilization, row.gpu_usage_threshold)
        busy = is_busy(beat, row.gpu_usage_threshold)
        values.append(
            {
                "b_id": beat.machine_id,
                "last_report_at": beat.received_at,
                "gpu_utilization": beat.gpu_utilization,
                "last_activity": _newest(
                    row.last_activity,
                    beat.last_input_at,
                    beat.sample_time if gpu is not False else None,
                ),
                "report_interval_seconds": beat.interval_seconds,
                "agent_version": beat.agent_version,
            }
        )
        was = (bool(row.agent_online), row.agent_busy)
        if was != (True, busy) and _flip(conn, beat.machine_id, was, (True, busy)):
            report = AgentReport(
                online=True,
                # The control plane's clock, like the monitor's offline reports: a machine
                # whose clock lags must not have its reports discarded as stale.
                at=beat.received_at,
                gpu_busy=gpu,
                busy=busy,
                gpu_utilization=beat.gpu_utilization,
                active_users=beat.active_users,
                last_input_at=beat.last_input_at,
            )
            transitions.append(Transition(beat.machine_id, report))
    _UPDATE_LIVE.execute(conn, values)
    return transitions


def sweep_offline(engine: Engine, now: datetime) -> list[Transition]:
    """Mark machines whose agent fell silent for three intervals (1.5 with a standby) as
    offline; return those transitions (each exactly once, whoever else sweeps). Safe to call
    from any process."""
    transitions: list[Transition] = []
    with engine.begin() as conn:
        online = conn.execute(
            select(
                _machines.c.id,
                _machines.c.last_report_at,
                _machines.c.report_interval_seconds,
                _machines.c.agent_busy,
                _has_standby.label("has_standby"),
            )
            .select_from(_machines.outerjoin(_standbys, _standbys.c.machine_id == _machines.c.id))
            .where(_machines.c.agent_online.is_(True))
        ).all()
        for row in online:
            window = offline_after(row.report_interval_seconds, standby=bool(row.has_standby))
            if row.last_report_at is not None and now - row.last_report_at <= window:
                continue
            result = conn.execute(
                update(_machines)
                .where(
                    _machines.c.id == row.id,
                    _machines.c.agent_online.is_(True),
                    _machines.c.last_report_at == row.last_report_at,  # no report came meanwhile
                )
                .values(agent_online=False, agent_busy=None)
            )
            if result.rowcount == 1:
                transitions.append(Transition(row.id, AgentReport(online=False, at=now)))
    return transitions


def forget_told_state(engine: Engine, transition: Transition) -> None:
    """After a transition's signal could not be delivered: mark the told state as the
    opposite, unknown busy, so the next report (or sweep) counts as a transition again and is
    signalled anew. The workflow may hear one twice; it never misses one for good."""
    with engine.begin() as conn:
        conn.execute(
            update(_machines)
            .where(_machines.c.id == transition.machine_id)
            .values(agent_online=not transition.report.online, agent_busy=None)
        )
