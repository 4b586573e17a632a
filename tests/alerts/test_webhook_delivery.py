"""Webhooks: signed, retried with backoff while the endpoint fails, delivered once it recovers,
every attempt recorded; given up (and shown as failed) after the last attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.alerts.delivery import MAX_ATTEMPTS, deliver_due
from core.alerts.evaluate import AlertTransition, Change
from core.alerts.rules import RuleKind
from core.alerts.signing import verify
from core.alerts.store import record_transitions, rotate_secret, webhook_of
from core.db import session_scope
from core.models import AlertDelivery, AlertDeliveryAttempt, Event, Machine
from tests.alerts.helpers import make_machine, webhook_receiver
from tests.api.conftest import closed_port

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def fire_disk_alert(engine: Engine, machine: Machine, url: str) -> str:
    """Point the owner's webhook at `url`, open a disk alert; returns the signing secret."""
    with session_scope(engine) as session:
        webhook = webhook_of(session, machine.owner_id)
        webhook.url = url
        session.add(webhook)
        secret = rotate_secret(session, machine.owner_id).secret
        transition = AlertTransition(
            Change.FIRE,
            machine.id,
            machine.owner_id,
            RuleKind.DISK_USAGE,
            "disk usage 86%, above 85%",
            value=86.0,
            threshold=85.0,
        )
        record_transitions(session, [transition], T0)
    assert secret is not None
    return secret


def deliveries(engine: Engine) -> list[AlertDelivery]:
    with Session(engine) as session:
        return list(session.exec(select(AlertDelivery)))


def attempts(engine: Engine) -> list[AlertDeliveryAttempt]:
    with Session(engine) as session:
        query = select(AlertDeliveryAttempt).order_by(col(AlertDeliveryAttempt.id))
        return list(session.exec(query))


async def test_webhook_is_retried_until_the_endpoint_recovers(engine: Engine) -> None:
    machine = make_machine(engine)
    with webhook_receiver([500, 500]) as receiver:
        secret = fire_disk_alert(engine, machine, receiver.url)
        async with httpx.AsyncClient() as http:
            first = await deliver_due(engine, http, T0)
            assert (first.delivered, first.retrying) == (0, 1)
            # Not due again before its backoff ends.
            assert (await deliver_due(engine, http, T0 + timedelta(seconds=10))).retrying == 0
            assert len(receiver.received) == 1
            await deliver_due(engine, http, T0 + timedelta(seconds=30))
            third = await deliver_due(engine, http, T0 + timedelta(seconds=90))
            assert third.delivered == 1
            # Delivered: never sent again.
            await deliver_due(engine, http, T0 + timedelta(hours=2))

    assert len(receiver.received) == 3
    delivered = receiver.received[-1]
    assert delivered.headers["X-Dumont-Event"] == "alert.firing"
    assert verify(secret, delivered.body, delivered.headers["X-Dumont-Signature"])
    assert not verify("whsec_someone-else", delivered.body, delivered.headers["X-Dumont-Signature"])
    assert {r.body for r in receiver.received} == {delivered.body}  # every retry, the same bytes
    payload = delivered.json()
    assert payload["event"] == "alert.firing"
    assert (payload["alert"]["machine_id"], payload["alert"]["kind"]) == (machine.id, "disk_usage")
    assert payload["alert"]["reason"] == "disk usage 86%, above 85%"

    (delivery,) = deliveries(engine)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert delivered.headers["X-Dumont-Delivery"] == str(delivery.id)
    assert [(a.status_code, a.error) for a in attempts(engine)] == [
        (500, "HTTP 500"),
        (500, "HTTP 500"),
        (200, None),
    ]
    with Session(engine) as session:
        (event,) = session.exec(select(Event).where(Event.machine_id == machine.id))
    assert (event.event_type, event.reason) == ("alert_firing", "disk usage 86%, above 85%")


async def test_undeliverable_webhook_is_given_up_after_its_last_attempt(engine: Engine) -> None:
    machine = make_machine(engine)
    fire_disk_alert(engine, machine, f"http://127.0.0.1:{closed_port()}/hook")
    now = T0
    async with httpx.AsyncClient() as http:
        for _ in range(MAX_ATTEMPTS + 2):
            await deliver_due(engine, http, now)
            (delivery,) = deliveries(engine)
            if delivery.next_attempt_at is None:
                break
            now = delivery.next_attempt_at
    assert (delivery.status, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    tried = attempts(engine)
    assert len(tried) == MAX_ATTEMPTS
    assert all(a.status_code is None and "ConnectError" in (a.error or "") for a in tried)
    # The waits grow: 30 s, 1 min, 2 min, ...
    times = [a.attempted_at for a in tried]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert gaps[:3] == [30, 60, 120] and gaps == sorted(gaps)
