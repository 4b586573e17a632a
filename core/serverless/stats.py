"""The serverless status's figures, as pure functions of what the database holds: the machine's
state changes since the mode was enabled (its events), its prices, and the cold starts the
gateways measured. The API reads the inputs; nothing here reads a clock or a table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.contracts.states import MachineState
from core.savings import Periods, machine_savings

# Asleep: no GPU bills. A paused machine keeps its stopped disk on the host (which bills);
# one hibernated after a long pause keeps only its snapshot in object storage.
_PAUSED = frozenset({MachineState.PAUSED.value})
_HIBERNATED = frozenset({MachineState.HIBERNATED.value, MachineState.DELETED.value})


@dataclass(frozen=True)
class Asleep:
    paused_seconds: float = 0.0
    hibernated_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.paused_seconds + self.hibernated_seconds


def asleep_between(
    changes: Iterable[tuple[datetime, str]],
    *,
    state_at_start: str | None,
    start: datetime,
    end: datetime,
) -> Asleep:
    """Seconds spent paused and hibernated within [start, end]. `changes` are the states the
    machine entered (its events' `state`), oldest first; `state_at_start` the one it was in at
    `start`. A period still open at `end` counts up to `end`."""
    paused = hibernated = 0.0
    state, since = state_at_start, start
    for at, entered in [*changes, (end, None)]:
        at = min(max(at, start), end)
        seconds = max(0.0, (at - since).total_seconds())
        if state in _PAUSED:
            paused += seconds
        elif state in _HIBERNATED:
            hibernated += seconds
        if entered is None:
            break
        state, since = entered, at
    return Asleep(paused_seconds=paused, hibernated_seconds=hibernated)


def pause_savings(
    asleep: Asleep,
    *,
    price_per_hour: float | None,
    disk_price_per_hour: float | None,
    stored_bytes: int,
    price_per_gb_month: float,
    now: datetime,
) -> float:
    """Net USD the time asleep saved, by the formula of every other savings figure
    (`core.savings`): the GPU hours not billed at `price_per_hour`, less the stopped disk while
    paused and the snapshots' storage over the hours asleep. The machine's current prices
    stand for every period (a resume on a new host may have changed them)."""
    price = price_per_hour or 0.0
    savings = machine_savings(
        hibernated=Periods(
            closed_seconds=asleep.hibernated_seconds,
            closed_cost_avoided=asleep.hibernated_seconds / 3600 * price,
        ),
        paused=Periods(
            closed_seconds=asleep.paused_seconds,
            closed_cost_avoided=asleep.paused_seconds / 3600 * price,
        ),
        closed_disk_cost=asleep.paused_seconds / 3600 * (disk_price_per_hour or 0.0),
        disk_price_per_hour=disk_price_per_hour,
        stored_bytes=stored_bytes,
        price_per_gb_month=price_per_gb_month,
        now=now,
    )
    return savings.net_usd


@dataclass(frozen=True)
class Latency:
    mean: float | None
    p95: float | None
    count: int


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of a non-empty sequence: a value that was
    measured, never an interpolation between two."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency(values: Sequence[float]) -> Latency:
    if not values:
        return Latency(mean=None, p95=None, count=0)
    return Latency(
        mean=round(sum(values) / len(values), 1),
        p95=round(percentile(values, 95), 1),
        count=len(values),
    )
