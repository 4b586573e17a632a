"""What a machine costs and what pausing, hibernating and its standby saved its owner. Pure
arithmetic; the API reads the inputs from the machine's row, its standby's row and instance
records, and the snapshot index.

The rule, for a machine with a CPU standby or without: the yardstick is the machine up on its
GPU (with its standby, if it has one), and every hour costs what is rented in it and saves
what the yardstick would have billed beyond that, so cost + savings = the yardstick:

    up on the GPU   costs GPU + standby                 saves nothing
    paused          costs disk + standby + storage      saves GPU - disk - storage
    on `standby`    costs standby                       saves GPU (the standby bills anyway)
    hibernated      costs storage                       saves GPU + standby - storage

"GPU" is the price of the GPU instance the machine ran on (the one lost or released on the way
to its standby); "storage" the snapshots' over those hours. Time on the standby saves the GPU
whatever brought it there: an idle migration shows like a hibernation, and a lost GPU like the
hibernation a machine without a standby falls back to. A machine without a standby has no
standby term anywhere: its figures are the ones from before standbys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

GB = 1_000_000_000  # storage is billed per decimal GB (core/snapshots/cost.py)
HOURS_PER_MONTH = 730.0  # 365 × 24 / 12, the month object stores bill by

# States whose instance is stopped: only its disk bills.
_DISK_ONLY = frozenset({"paused", "stopped"})
# States in which the snapshots' storage is what the machine costs instead of its GPU.
_STORED = frozenset({"hibernated", "deleted", "paused"})


def _hours(since: datetime | None, until: datetime) -> float:
    return 0.0 if since is None else max(0.0, (until - since).total_seconds() / 3600)


@dataclass(frozen=True)
class Periods:
    """One kind of time not billed (hibernated, paused, on the standby): the periods that
    ended, summed by the bookkeeping when each ended, plus the one open since `open_since`."""

    closed_seconds: float = 0.0
    closed_cost_avoided: float = 0.0
    open_since: datetime | None = None
    # The price not billed in the open period (the machine's while it ran).
    open_price_per_hour: float | None = None

    def hours(self, now: datetime) -> tuple[float, float]:
        """(hours in all, of which in the open period)."""
        open_hours = _hours(self.open_since, now)
        return max(0.0, self.closed_seconds) / 3600 + open_hours, open_hours

    def cost_avoided(self, now: datetime) -> float:
        _, open_hours = self.hours(now)
        return max(0.0, self.closed_cost_avoided) + open_hours * (self.open_price_per_hour or 0.0)


@dataclass(frozen=True)
class Savings:
    hibernated_hours: float
    paused_hours: float
    cost_avoided_usd: float  # the machine's price × hours hibernated, paused or on standby
    disk_cost_usd: float  # the stopped disk while paused (it bills on the host)
    storage_cost_usd: float  # the snapshots' storage over the hibernated and paused hours
    net_usd: float
    standby_hours: float = 0.0


def storage_per_hour(stored_bytes: int, price_per_gb_month: float) -> float:
    return stored_bytes / GB * price_per_gb_month / HOURS_PER_MONTH


def machine_savings(
    *,
    hibernated: Periods,
    paused: Periods,
    closed_disk_cost: float,
    disk_price_per_hour: float | None,
    stored_bytes: int,
    price_per_gb_month: float,
    now: datetime,
    standby: Periods | None = None,
) -> Savings:
    """Savings over every hibernated, paused and standby period; an open paused period's
    stopped disk is billed at `disk_price_per_hour`. Standby hours save their GPU price with
    nothing taken off: the standby and the snapshots bill whether the GPU runs or not."""
    on_standby = standby or Periods()
    hibernated_hours, _ = hibernated.hours(now)
    paused_hours, paused_open = paused.hours(now)
    standby_hours, _ = on_standby.hours(now)
    avoided = hibernated.cost_avoided(now) + paused.cost_avoided(now) + on_standby.cost_avoided(now)
    disk = max(0.0, closed_disk_cost) + paused_open * (disk_price_per_hour or 0.0)
    hours = hibernated_hours + paused_hours
    storage = storage_per_hour(stored_bytes, price_per_gb_month) * hours
    return Savings(
        hibernated_hours=hibernated_hours,
        paused_hours=paused_hours,
        cost_avoided_usd=avoided,
        disk_cost_usd=disk,
        storage_cost_usd=storage,
        net_usd=avoided - disk - storage,
        standby_hours=standby_hours,
    )


# --- cost -------------------------------------------------------------------------------


def gpu_per_hour(
    *,
    status: str,
    price_per_hour: float | None,
    disk_price_per_hour: float | None,
    serves_standby: bool,
) -> float:
    """What the machine's own (GPU) instance bills per hour now: nothing while the projected
    instance is its standby (that one is billed as the standby) or it has none, its disk while
    stopped or paused, else its price."""
    if serves_standby:
        return 0.0
    if status in _DISK_ONLY:
        return disk_price_per_hour or 0.0
    return price_per_hour or 0.0


@dataclass(frozen=True)
class Ledger:
    """The GPU's cost as the bookkeeping summed it up to `since`, and its rate after."""

    closed_usd: float = 0.0
    since: datetime | None = None
    per_hour: float = 0.0

    def total(self, now: datetime) -> float:
        return max(0.0, self.closed_usd) + _hours(self.since, now) * max(0.0, self.per_hour)


@dataclass(frozen=True)
class StandbyInstance:
    """One standby instance the machine has had: its price, and while it lived."""

    price_per_hour: float | None
    created_at: datetime
    destroyed_at: datetime | None = None

    def cost(self, now: datetime) -> float:
        until = min(self.destroyed_at, now) if self.destroyed_at is not None else now
        return _hours(self.created_at, until) * (self.price_per_hour or 0.0)


@dataclass(frozen=True)
class Cost:
    per_hour_usd: float  # now: the GPU's (or its disk's), the standby's, the storage's
    total_usd: float  # so far
    standby_per_hour_usd: float  # of which the standby's, per hour now
    standby_usd: float  # of which the standby's, so far


def machine_cost(
    *,
    status: str,
    gpu_now_per_hour: float,
    ledger: Ledger,
    standby_price_per_hour: float | None,
    standby_instances: list[StandbyInstance],
    savings: Savings,
    stored_bytes: int,
    price_per_gb_month: float,
    now: datetime,
) -> Cost:
    """The machine's cost: its GPU's ledger, its standby instances over their lives, and the
    snapshots' storage over the hours the savings count it (so cost + savings = the yardstick
    of the module's rule). `standby_price_per_hour` is the live standby's (None: none now)."""
    storage_now = storage_per_hour(stored_bytes, price_per_gb_month) if status in _STORED else 0
    standby_now = standby_price_per_hour or 0.0
    standby_usd = sum(instance.cost(now) for instance in standby_instances)
    return Cost(
        per_hour_usd=gpu_now_per_hour + standby_now + storage_now,
        total_usd=ledger.total(now) + standby_usd + savings.storage_cost_usd,
        standby_per_hour_usd=standby_now,
        standby_usd=standby_usd,
    )
