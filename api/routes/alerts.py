"""`/api/v1/alerts`: the caller's alert rules and webhook, the alerts that fired, and the
webhook deliveries with every attempt.

Rules are per owner; the seed's defaults are created the first time they are read. The webhook
secret is shown once, when it is created or rotated, and never again.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from sqlmodel import col, select

from api.deps import CurrentUser, SessionDep
from api.pagination import Pager, newest_first, pager
from api.schemas.alerts import (
    AlertOut,
    AttemptOut,
    DeliveryOut,
    RuleOut,
    RulesIn,
    RulesOut,
    SecretOut,
)
from api.schemas.common import AUTHENTICATED, NO_NUL, ErrorOut, row_id
from core.alerts.store import owner_rules, rotate_secret, webhook_of
from core.models import Alert, AlertDelivery, AlertDeliveryAttempt, AlertRule, utcnow

router = APIRouter(
    prefix="/api/v1/alerts",
    tags=["alerts"],
    responses=AUTHENTICATED,
)

AlertsPage = Annotated[Pager, Depends(pager(100))]


def _rules_out(session: SessionDep, owner_id: str) -> RulesOut:
    rules = owner_rules(session, owner_id)
    webhook = webhook_of(session, owner_id)
    return RulesOut(
        rules=[RuleOut.model_validate(rule) for rule in rules],
        webhook_url=webhook.url,
        webhook_secret_created_at=webhook.secret_created_at,
    )


@router.get("/rules", response_model=RulesOut)
def get_rules(user: CurrentUser, session: SessionDep) -> RulesOut:
    out = _rules_out(session, user.id)
    session.commit()  # the defaults, the first time
    return out


@router.put("/rules", response_model=RulesOut)
def put_rules(body: RulesIn, user: CurrentUser, session: SessionDep) -> RulesOut:
    """Change some rules and/or the webhook URL; what the body leaves out is kept."""
    rows: dict[str, AlertRule] = {row.kind: row for row in owner_rules(session, user.id)}
    for change in body.rules:
        row = rows[change.kind.value]
        for name in change.model_fields_set - {"kind"}:
            setattr(row, name, getattr(change, name))
        row.updated_at = utcnow()
        session.add(row)
    if "webhook_url" in body.model_fields_set:
        webhook = webhook_of(session, user.id)
        webhook.url = str(body.webhook_url) if body.webhook_url is not None else None
        webhook.updated_at = utcnow()
        session.add(webhook)
    session.flush()
    out = _rules_out(session, user.id)
    session.commit()
    return out


@router.post("/webhook-secret", status_code=status.HTTP_201_CREATED, response_model=SecretOut)
def rotate_webhook_secret(user: CurrentUser, session: SessionDep, response: Response) -> SecretOut:
    """A new signing secret (the previous one stops signing now), shown this once."""
    webhook = rotate_secret(session, user.id)
    session.commit()
    assert webhook.secret is not None and webhook.secret_created_at is not None
    response.headers["Cache-Control"] = "no-store"
    return SecretOut(webhook_secret=webhook.secret, created_at=webhook.secret_created_at)


@router.get("", response_model=list[AlertOut])
def list_alerts(
    user: CurrentUser,
    session: SessionDep,
    page: AlertsPage,
    state: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
    machine_id: Annotated[str | None, Query(max_length=64), NO_NUL] = None,
) -> list[Alert]:
    """The caller's alerts, newest first."""
    query = select(Alert).where(Alert.owner_id == user.id)
    if state is not None:
        query = query.where(Alert.state == state)
    if machine_id is not None:
        query = query.where(Alert.machine_id == machine_id)
    return page.rows(session, query, newest_first(Alert.fired_at, Alert.id))


@router.get("/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    user: CurrentUser,
    session: SessionDep,
    page: AlertsPage,
    status_filter: Annotated[
        Literal["pending", "delivered", "failed"] | None, Query(alias="status")
    ] = None,
) -> list[DeliveryOut]:
    """The caller's webhook deliveries, newest first, each with every attempt."""
    query = select(AlertDelivery).where(AlertDelivery.owner_id == user.id)
    if status_filter is not None:
        query = query.where(AlertDelivery.status == status_filter)
    deliveries = page.rows(session, query, newest_first(AlertDelivery.created_at, AlertDelivery.id))
    attempts: dict[int, list[AttemptOut]] = {d.id or 0: [] for d in deliveries}
    if deliveries:
        rows = session.exec(
            select(AlertDeliveryAttempt)
            .where(col(AlertDeliveryAttempt.delivery_id).in_(list(attempts)))
            .order_by(col(AlertDeliveryAttempt.id))
        )
        for row in rows:
            attempts[row.delivery_id].append(AttemptOut.model_validate(row))
    return [
        DeliveryOut(**d.model_dump(exclude={"owner_id", "body"}), attempt_log=attempts[d.id or 0])
        for d in deliveries
    ]


@router.get(
    "/{alert_id}",
    response_model=AlertOut,
    responses={404: {"model": ErrorOut, "description": "No such alert (or not yours)"}},
)
def get_alert(
    alert_id: Annotated[int, row_id("alert")], user: CurrentUser, session: SessionDep
) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None or alert.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
    return alert
