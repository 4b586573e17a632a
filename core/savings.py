"""What auto-hibernation saved a machine's owner: the GPU hours not billed while hibernated,
less what its snapshots cost in object storage over those hours. Pure arithmetic; the API reads
the inputs from the machine's row and the snapshot index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

GB = 1_000_000_000  # storage is billed per decimal GB (core/snapshots/cost.py)
HOURS_PER_MONTH = 730.0  # 365 × 24 / 12, the month object stores bill by


@dataclass(frozen=True)
class Savings:
    hibernated_hours: float
    cost_avoided_usd: float  # GPU price × hours hibernated
    storage_cost_usd: float  # the snapshots' storage over the same hours
    net_usd: float


def hibernation_savings(
    *,
    closed_seconds: float,
    closed_cost_avoided: float,
    open_since: datetime | None,
    open_price_per_hour: float | None,
    stored_bytes: int,
    price_per_gb_month: float,
    now: datetime,
) -> Savings:
    """Savings over every hibernation period: the closed ones (seconds and cost already summed
    by the workflow when each ended) plus the open one from `open_since` to `now`, billed at
    the price of the instance that was hibernated."""
    open_hours = 0.0
    if open_since is not None:
        open_hours = max(0.0, (now - open_since).total_seconds() / 3600)
    hours = max(0.0, closed_seconds) / 3600 + open_hours
    avoided = max(0.0, closed_cost_avoided) + open_hours * (open_price_per_hour or 0.0)
    storage = stored_bytes / GB * price_per_gb_month * hours / HOURS_PER_MONTH
    return Savings(
        hibernated_hours=hours,
        cost_avoided_usd=avoided,
        storage_cost_usd=storage,
        net_usd=avoided - storage,
    )
