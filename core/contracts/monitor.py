"""The fleet monitor: its carried state, its input and its rounds' results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

FLEET_MONITOR_WORKFLOW_ID = "fleet-monitor"


@dataclass(kw_only=True)
class MonitorState:
    """The monitor's whole state, carried across continue-as-new: absolute deadlines."""

    next_tick_at: datetime | None = None
    next_prune_at: datetime | None = None
    next_reconcile_at: datetime | None = None
    ticks: int = 0


@dataclass(kw_only=True)
class MonitorInput:
    interval_seconds: int = 30
    prune_interval_seconds: int = 3600
    # How often every provider's instances are listed against the machines (orphans).
    reconcile_interval_seconds: int = 300
    carried: MonitorState | None = None


@dataclass(kw_only=True)
class MonitorTick:
    """One monitor round's time: every activity of a round judges by it, so a retried
    activity decides as the first try did."""

    now: datetime


@dataclass(kw_only=True)
class SweepResult:
    offline: int = 0
    signalled: int = 0


@dataclass(kw_only=True)
class EvaluateAlertsResult:
    fired: int = 0
    resolved: int = 0


@dataclass(kw_only=True)
class DeliverWebhooksResult:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


@dataclass(kw_only=True)
class PruneMetricsResult:
    deleted: int = 0


@dataclass(kw_only=True)
class ReconcileResult:
    """One pass over every provider's instances carrying this installation's labels."""

    listed: int = 0  # live instances with a Dumont label
    orphans: int = 0  # of them, owned by no live machine
    new_orphans: int = 0  # seen as orphans for the first time (reported now)
    destroyed: int = 0  # orphans past the grace period, destroyed
    # Up machines whose instance the provider no longer lists (or lists failed): told so.
    vanished: int = 0
    failed_providers: list[str] = field(default_factory=list)  # could not be listed this time
