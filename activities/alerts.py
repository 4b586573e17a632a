"""The fleet monitor's alert work: evaluate every owner's rules, post due webhooks."""

from __future__ import annotations

import httpx
from sqlalchemy.engine import Engine
from temporalio import activity

from core.alerts.delivery import deliver_due
from core.alerts.evaluate import Change, evaluate
from core.alerts.store import machine_windows, open_alerts, record_transitions, rules_by_owner
from core.contracts.activities import ActivityName
from core.contracts.monitor import DeliverWebhooksResult, EvaluateAlertsResult, MonitorTick
from core.db import session_scope


class AlertActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name=ActivityName.EVALUATE_ALERTS)
    def evaluate_alerts(self, input: MonitorTick) -> EvaluateAlertsResult:
        """Open and close alerts as of the tick's time, in one transaction: a retry re-reads
        the alerts this one opened and opens none twice."""
        with session_scope(self._engine) as session:
            current = open_alerts(session)
            windows = machine_windows(session, input.now, {a.machine_id for a in current})
            rules = rules_by_owner(session, {w.owner_id for w in windows})
            transitions = evaluate(rules, windows, current, input.now)
            record_transitions(session, transitions, input.now)
        fired = sum(1 for t in transitions if t.change is Change.FIRE)
        return EvaluateAlertsResult(fired=fired, resolved=len(transitions) - fired)

    @activity.defn(name=ActivityName.DELIVER_WEBHOOKS)
    async def deliver_webhooks(self, input: MonitorTick) -> DeliverWebhooksResult:
        async with httpx.AsyncClient(follow_redirects=False) as http:
            counts = await deliver_due(self._engine, http, input.now)
        return DeliverWebhooksResult(
            delivered=counts.delivered, retrying=counts.retrying, failed=counts.failed
        )
