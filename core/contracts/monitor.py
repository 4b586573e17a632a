"""The fleet monitor: its carried state, its input and its rounds' results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

FLEET_MONITOR_WORKFLOW_ID = "fleet-monitor"


@dataclass(kw_only=True)
class MonitorState:
    """The monitor's whole state, carried across continue-as-new: absolute deadlines."""

    next_tick_at: datetime | None = None
    next_prune_at: datetime | None = None
    ticks: int = 0


@dataclass(kw_only=True)
class MonitorInput:
    interval_seconds: int = 30
    prune_interval_seconds: int = 3600
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
