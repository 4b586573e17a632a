"""The serverless status of a machine: its endpoint's configuration and what serverless mode
did since it was last enabled, read from the events, the cold-start rows and the machine's
prices, computed by `core.serverless.stats`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.schemas.serverless import (
    LatencyOut,
    ServerlessConfigOut,
    ServerlessStatusOut,
)
from api.services.savings import stored_bytes_by_machine
from core.contracts.events import EventType
from core.contracts.states import MachineState
from core.models import Event, Machine
from core.serverless.stats import Asleep, asleep_between, latency, pause_savings
from core.serverless.table import ServerlessColdStart, ServerlessEndpoint
from core.settings import Settings

# A return from a pause: on its host or a new one (resumed), or from hibernation (woke).
_CYCLE_EVENTS = (EventType.RESUMED.value, EventType.WOKE.value)
COLD_START_OK = "ok"


def gateway_url(settings: Settings, base_url: str, machine_id: str) -> str:
    """Where clients reach the machine: the gateway's public address, else the API's own (the
    gateway is mounted on it)."""
    root = (settings.gateway_public_url or base_url).rstrip("/")
    return f"{root}/serverless/{machine_id}/"


def _asleep(session: Session, machine_id: str, start: datetime, end: datetime) -> Asleep:
    states = (
        select(Event.timestamp, Event.state)
        .where(Event.machine_id == machine_id, col(Event.state).is_not(None))
        .order_by(col(Event.timestamp), col(Event.id))
    )
    before = session.exec(
        states.where(Event.timestamp < start)
        .order_by(None)
        .order_by(col(Event.timestamp).desc(), col(Event.id).desc())
        .limit(1)
    ).first()
    changes = session.exec(states.where(Event.timestamp >= start, Event.timestamp <= end)).all()
    return asleep_between(
        [(at, state) for at, state in changes if state is not None],
        state_at_start=before[1] if before else None,
        start=start,
        end=end,
    )


def _cycles(session: Session, machine_id: str, start: datetime, end: datetime) -> int:
    query = select(func.count()).where(
        Event.machine_id == machine_id,
        col(Event.event_type).in_(_CYCLE_EVENTS),
        Event.timestamp >= start,
        Event.timestamp <= end,
    )
    return int(session.exec(query).one())


def _cold_starts(
    session: Session, machine_id: str, start: datetime, end: datetime
) -> tuple[list[float], int]:
    """The ok cold starts' total times, and how many did not answer."""
    rows = session.exec(
        select(ServerlessColdStart.outcome, ServerlessColdStart.total_ms).where(
            ServerlessColdStart.machine_id == machine_id,
            ServerlessColdStart.at >= start,
            ServerlessColdStart.at <= end,
        )
    ).all()
    ok = [float(ms) for outcome, ms in rows if outcome == COLD_START_OK and ms is not None]
    failed = sum(1 for outcome, _ in rows if outcome != COLD_START_OK)
    return ok, failed


def status_of(
    session: Session,
    settings: Settings,
    base_url: str,
    machine: Machine,
    row: ServerlessEndpoint | None,
) -> ServerlessStatusOut:
    """The figures count from the latest enable (`enabled_at`) until now, or until the mode was
    turned off (the row's `updated_at` then). `paused_seconds` is time paused or hibernated
    after a pause; `savings_usd` what that time saved at the machine's current prices, net of
    the stopped disk and the snapshots' storage (as the machine's own `savings_usd`, which
    counts every pause and hibernation, serverless or not); latency from the cold starts the
    gateways answered; `cycles` the resumes and wakes."""
    state = MachineState(machine.status)
    if row is None:
        return ServerlessStatusOut(
            machine_id=machine.id,
            enabled=False,
            state=state,
            gateway_url=None,
            config=None,
            key_prefix=None,
            enabled_at=None,
            last_request_at=None,
            paused_seconds=0.0,
            savings_usd=0.0,
            resume_latency_ms=LatencyOut(mean=None, p95=None, count=0),
            cycles=0,
            cold_starts_failed=0,
        )
    now = datetime.now(UTC)
    start, end = row.enabled_at, now if row.enabled else min(row.updated_at, now)
    asleep = _asleep(session, machine.id, start, end)
    stored = stored_bytes_by_machine(session, machine.owner_id, [machine.id]).get(machine.id, 0)
    price = machine.paused_price_per_hour or machine.price_per_hour
    savings = pause_savings(
        asleep,
        price_per_hour=price or machine.hibernated_price_per_hour,
        disk_price_per_hour=machine.disk_price_per_hour,
        stored_bytes=stored,
        price_per_gb_month=settings.snapshot_price_per_gb_month,
        now=now,
    )
    ok, failed = _cold_starts(session, machine.id, start, end)
    figures = latency(ok)
    return ServerlessStatusOut(
        machine_id=machine.id,
        enabled=row.enabled,
        state=state,
        gateway_url=gateway_url(settings, base_url, machine.id),
        config=ServerlessConfigOut.model_validate(row, from_attributes=True),
        key_prefix=row.key_prefix,
        enabled_at=row.enabled_at,
        last_request_at=row.last_request_at,
        paused_seconds=round(asleep.seconds, 1),
        savings_usd=round(savings, 6),
        resume_latency_ms=LatencyOut(mean=figures.mean, p95=figures.p95, count=figures.count),
        cycles=_cycles(session, machine.id, start, end),
        cold_starts_failed=failed,
    )
