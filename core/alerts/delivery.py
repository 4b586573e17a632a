"""Posting pending alert events to owners' webhooks, signed, with every attempt recorded.

A delivery that fails (no answer, or not 2xx) is tried again after 30 s, 1 min, 2 min, ...
(at most 30 min apart) and given up after `MAX_ATTEMPTS`; it then shows as failed. Delivery is
at least once: receivers tell repeats apart by `X-Dumont-Delivery`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from core.alerts.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from core.alerts.store import secret_for
from core.db import session_scope
from core.models import AlertDelivery, AlertDeliveryAttempt

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(minutes=30)
REQUEST_TIMEOUT_SECONDS = 10.0
PARALLEL_POSTS = 10
BATCH = 200


@dataclass(frozen=True)
class _Due:
    delivery_id: int
    url: str
    event: str
    body: bytes
    secret: str = field(repr=False)


@dataclass(frozen=True)
class _Outcome:
    delivery_id: int
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class DeliveryCounts:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt."""
    return min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_WAIT)


async def deliver_due(engine: Engine, http: httpx.AsyncClient, now: datetime) -> DeliveryCounts:
    """Attempt every delivery due at `now` once; record each attempt and what comes next."""
    due = await asyncio.to_thread(_due, engine, now)
    if not due:
        return DeliveryCounts()
    limit = asyncio.Semaphore(PARALLEL_POSTS)

    async def post(item: _Due) -> _Outcome:
        async with limit:
            return await _post(http, item)

    outcomes = await asyncio.gather(*(post(item) for item in due))
    return await asyncio.to_thread(_record, engine, outcomes, now)


def _due(engine: Engine, now: datetime) -> list[_Due]:
    with session_scope(engine) as session:
        rows = session.exec(
            select(AlertDelivery)
            .where(AlertDelivery.status == "pending", col(AlertDelivery.next_attempt_at) <= now)
            .order_by(col(AlertDelivery.next_attempt_at), col(AlertDelivery.id))
            .limit(BATCH)
        ).all()
        secrets: dict[str, str] = {}
        due = []
        for row in rows:
            if row.owner_id not in secrets:
                secrets[row.owner_id] = secret_for(session, row.owner_id)
            due.append(
                _Due(row.id or 0, row.url, row.event, row.body.encode(), secrets[row.owner_id])
            )
        return due


async def _post(http: httpx.AsyncClient, item: _Due) -> _Outcome:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "dumont-cloud-webhooks",
        EVENT_HEADER: item.event,
        DELIVERY_HEADER: str(item.delivery_id),
        SIGNATURE_HEADER: sign(item.secret, item.body),
    }
    try:
        response = await http.post(
            item.url, content=item.body, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
        )
    except httpx.HTTPError as exc:
        return _Outcome(item.delivery_id, None, f"{type(exc).__name__}: {exc}"[:2000])
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return _Outcome(item.delivery_id, response.status_code, error)


def _record(engine: Engine, outcomes: Sequence[_Outcome], now: datetime) -> DeliveryCounts:
    delivered = retrying = failed = 0
    with session_scope(engine) as session:
        for outcome in outcomes:
            row = session.get(AlertDelivery, outcome.delivery_id)
            if row is None or row.status != "pending":
                continue
            session.add(
                AlertDeliveryAttempt(
                    delivery_id=outcome.delivery_id,
                    attempted_at=now,
                    status_code=outcome.status_code,
                    error=outcome.error,
                )
            )
            row.attempts += 1
            row.last_status_code = outcome.status_code
            row.last_error = outcome.error
            if outcome.delivered:
                row.status, row.delivered_at, row.next_attempt_at = "delivered", now, None
                delivered += 1
            elif row.attempts >= MAX_ATTEMPTS:
                row.status, row.next_attempt_at = "failed", None
                failed += 1
            else:
                row.next_attempt_at = now + retry_delay(row.attempts)
                retrying += 1
            session.add(row)
    return DeliveryCounts(delivered, retrying, failed)
