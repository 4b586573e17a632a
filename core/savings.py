"""What pausing and hibernating saved a machine's owner: the hours not billed at the price the
machine ran at, less what they cost instead (the stopped disk while paused, the snapshots in
object storage). Pure arithmetic; the API reads the inputs from the machine's row and the
snapshot index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

GB = 1_000_000_000  # storage is billed per decimal GB (core/snapshots/cost.py)
HOURS_PER_MONTH = 730.0  # 365 × 24 / 12, the month object stores bill by


@dataclass(frozen=True)
class Periods:
    """One kind of time not billed (hibernated, or paused): the periods that ended, summed by
    the bookkeeping when each ended, plus the one open since `open_since`."""

    closed_seconds: float = 0.0
    closed_cost_avoided: float = 0.0
    open_since: datetime | None = None
    # The machine's price while it ran, for the open period.
    open_price_per_hour: float | None = None

    def hours(self, now: datetime) -> tuple[float, float]:
        """(hours in all, of which in the open period)."""
        open_hours = 0.0
        if self.open_since is not None:
            open_hours = max(0.0, (now - self.open_since).total_seconds() / 3600)
        return max(0.0, self.closed_seconds) / 3600 + open_hours, open_hours

    def cost_avoided(self, now: datetime) -> float:
        _, open_hours = self.hours(now)
        return max(0.0, self.closed_cost_avoided) + open_hours * (self.open_price_per_hour or 0.0)


@dataclass(frozen=True)
class Savings:
    hibernated_hours: float
    paused_hours: float
    cost_avoided_usd: float  # the machine's price × hours hibernated or paused
    disk_cost_usd: float  # the stopped disk while paused (it bills on the host)
    storage_cost_usd: float  # the snapshots' storage over the same hours
    net_usd: float


def machine_savings(
    *,
    hibernated: Periods,
    paused: Periods,
    closed_disk_cost: float,
    disk_price_per_hour: float | None,
    stored_bytes: int,
    price_per_gb_month: float,
    now: datetime,
) -> Savings:
    """Savings over every hibernated and paused period; an open paused period's stopped disk
    is billed at `disk_price_per_hour`."""
    hibernated_hours, _ = hibernated.hours(now)
    paused_hours, paused_open = paused.hours(now)
    avoided = hibernated.cost_avoided(now) + paused.cost_avoided(now)
    disk = max(0.0, closed_disk_cost) + paused_open * (disk_price_per_hour or 0.0)
    hours = hibernated_hours + paused_hours
    storage = stored_bytes / GB * price_per_gb_month * hours / HOURS_PER_MONTH
    return Savings(
        hibernated_hours=hibernated_hours,
        paused_hours=paused_hours,
        cost_avoided_usd=avoided,
        disk_cost_usd=disk,
        storage_cost_usd=storage,
        net_usd=avoided - disk - storage,
    )
