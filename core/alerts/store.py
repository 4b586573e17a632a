"""Alerts in the database: owners' rules (defaults created lazily), the windows evaluation
reads, and what a transition writes (the alert row, the machine event, the webhook delivery)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, or_, select

from core.alerts.evaluate import (
    AlertTransition,
    Change,
    MachineWindow,
    OpenAlert,
    Sample,
)
from core.alerts.rules import DEFAULT_RULES, Rule, RuleKind
from core.alerts.signing import new_secret
from core.contracts.states import UP_STATES
from core.models import (
    Alert,
    AlertDelivery,
    AlertRule,
    AlertWebhook,
    Event,
    Machine,
    MetricSample,
    utcnow,
)

DEFAULT_INTERVAL_SECONDS = 30


def _as_rule(row: AlertRule) -> Rule:
    return Rule(RuleKind(row.kind), row.threshold, row.duration_seconds, row.enabled)


def _rules_of(session: Session, owner_id: str) -> dict[str, AlertRule]:
    rows = session.exec(select(AlertRule).where(AlertRule.owner_id == owner_id))
    return {row.kind: row for row in rows}


def owner_rules(session: Session, owner_id: str) -> list[AlertRule]:
    """The owner's rules in `RuleKind` order, creating the defaults the owner lacks."""
    rows = _rules_of(session, owner_id)
    missing = [rule for rule in DEFAULT_RULES if rule.kind.value not in rows]
    if missing:
        try:
            with session.begin_nested():
                for rule in missing:
                    row = AlertRule(
                        owner_id=owner_id,
                        kind=rule.kind.value,
                        threshold=rule.threshold,
                        duration_seconds=rule.duration_seconds,
                        enabled=rule.enabled,
                    )
                    session.add(row)
                    rows[row.kind] = row
        except IntegrityError:  # a concurrent request created them first
            rows = _rules_of(session, owner_id)
    return [rows[kind.value] for kind in RuleKind if kind.value in rows]


def rules_by_owner(session: Session, owner_ids: Iterable[str]) -> dict[str, list[Rule]]:
    """Every owner's rules as evaluation uses them; owners who never saved any get the
    defaults (without writing them)."""
    owners = set(owner_ids)
    stored: dict[str, dict[RuleKind, Rule]] = {owner: {} for owner in owners}
    if owners:
        for row in session.exec(select(AlertRule).where(col(AlertRule.owner_id).in_(owners))):
            stored[row.owner_id][RuleKind(row.kind)] = _as_rule(row)
    return {
        owner: [kinds.get(default.kind, default) for default in DEFAULT_RULES]
        for owner, kinds in stored.items()
    }


def webhook_of(session: Session, owner_id: str) -> AlertWebhook:
    return session.get(AlertWebhook, owner_id) or AlertWebhook(owner_id=owner_id)


def rotate_secret(session: Session, owner_id: str) -> AlertWebhook:
    """A new signing secret for the owner's webhooks; the old one stops signing at once."""
    webhook = webhook_of(session, owner_id)
    webhook.secret = new_secret()
    webhook.secret_created_at = webhook.updated_at = utcnow()
    session.add(webhook)
    session.flush()
    return webhook


def secret_for(session: Session, owner_id: str) -> str:
    """The owner's signing secret, created if the owner never asked for one (then deliveries
    are signed with a secret nobody holds until the owner rotates it: never unsigned)."""
    webhook = webhook_of(session, owner_id)
    if webhook.secret is None:
        webhook = rotate_secret(session, owner_id)
    assert webhook.secret is not None
    return webhook.secret


# --- evaluation input --------------------------------------------------------------------------


def open_alerts(session: Session) -> list[OpenAlert]:
    rows = session.exec(select(Alert).where(Alert.state == Change.FIRE.value))
    return [OpenAlert(a.id or 0, a.machine_id, a.owner_id, RuleKind(a.kind)) for a in rows]


def _percent(used: float | None, total: float | None) -> float | None:
    if used is None or not total:
        return None
    return 100.0 * used / total


def machine_windows(
    session: Session, now: datetime, with_machines: Iterable[str] = ()
) -> list[MachineWindow]:
    """The machines that are up, plus `with_machines` (those with open alerts), each with the
    samples that can decide its rules at `now`."""
    extra = set(with_machines)
    condition: ColumnElement[bool] = col(Machine.status).in_([state.value for state in UP_STATES])
    if extra:
        condition = or_(condition, col(Machine.id).in_(extra))
    machines = list(session.exec(select(Machine).where(condition)))
    up = [m.id for m in machines if m.status in UP_STATES]
    samples: dict[str, list[Sample]] = {machine_id: [] for machine_id in up}
    if up:
        longest = session.exec(
            select(func.max(AlertRule.duration_seconds)).where(col(AlertRule.enabled))
        ).one()
        interval = max((m.report_interval_seconds or DEFAULT_INTERVAL_SECONDS) for m in machines)
        lookback = timedelta(
            seconds=max(longest or 0, *(r.duration_seconds for r in DEFAULT_RULES)) + 3 * interval
        )
        rows = session.exec(
            select(MetricSample)
            .where(
                col(MetricSample.machine_id).in_(up),
                col(MetricSample.timestamp) >= now - lookback,
                col(MetricSample.timestamp) <= now,
            )
            .order_by(col(MetricSample.timestamp))
        )
        for row in rows:
            samples[row.machine_id].append(
                Sample(
                    at=row.timestamp,
                    gpu_utilization=row.gpu_utilization,
                    memory_percent=_percent(row.memory_used_mb, row.memory_total_mb),
                    disk_percent=_percent(row.disk_used_gb, row.disk_total_gb),
                )
            )
    return [
        MachineWindow(
            machine_id=m.id,
            owner_id=m.owner_id,
            state=m.status,
            # The projection changes with every state change: for an up machine, since when.
            up_since=m.updated_at,
            last_report_at=m.last_report_at,
            report_interval_seconds=m.report_interval_seconds or DEFAULT_INTERVAL_SECONDS,
            samples=tuple(samples.get(m.id, ())),
        )
        for m in machines
    ]


# --- transitions -------------------------------------------------------------------------------


def record_transitions(
    session: Session, transitions: Sequence[AlertTransition], now: datetime
) -> list[Alert]:
    """Write each transition: the alert row, the machine's event and, when the owner has a
    webhook, a pending delivery. A resolve of an alert no longer firing writes nothing."""
    changed: list[Alert] = []
    for transition in transitions:
        alert = _apply(session, transition, now)
        if alert is None:
            continue
        session.flush()
        machine = session.get(Machine, alert.machine_id)
        session.add(
            Event(
                machine_id=alert.machine_id,
                owner_id=alert.owner_id,
                event_type=f"alert_{transition.change.value}",
                state=machine.status if machine else None,
                reason=transition.reason,
                data={"alert_id": alert.id, "kind": alert.kind, "value": transition.value},
                timestamp=now,
            )
        )
        webhook = session.get(AlertWebhook, alert.owner_id)
        if webhook is not None and webhook.url:
            session.add(
                AlertDelivery(
                    owner_id=alert.owner_id,
                    alert_id=alert.id or 0,
                    event=f"alert.{transition.change.value}",
                    url=webhook.url,
                    body=webhook_body(alert, transition.change),
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        changed.append(alert)
    session.flush()
    return changed


def _apply(session: Session, transition: AlertTransition, now: datetime) -> Alert | None:
    if transition.change is Change.FIRE:
        alert = Alert(
            owner_id=transition.owner_id,
            machine_id=transition.machine_id,
            kind=transition.kind.value,
            threshold=transition.threshold,
            value=transition.value,
            reason=transition.reason,
            fired_at=now,
        )
        session.add(alert)
        return alert
    existing = session.get(Alert, transition.alert_id) if transition.alert_id else None
    if existing is None or existing.state != Change.FIRE.value:
        return None
    existing.state = Change.RESOLVE.value
    existing.resolved_at = now
    existing.resolved_reason = transition.reason
    if transition.value is not None:
        existing.value = transition.value
    session.add(existing)
    return existing


def webhook_body(alert: Alert, change: Change) -> str:
    """The JSON posted for an alert event; fixed once, so every retry signs the same bytes."""
    payload = {
        "event": f"alert.{change.value}",
        "alert": {
            "id": alert.id,
            "machine_id": alert.machine_id,
            "kind": alert.kind,
            "state": alert.state,
            "threshold": alert.threshold,
            "value": alert.value,
            "reason": alert.reason,
            "resolved_reason": alert.resolved_reason,
            "fired_at": alert.fired_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)
