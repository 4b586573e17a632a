"""Faults armed through the admin API: stockouts, quota, throttling storms, stuck operations."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sim.gce.errors import GceError, storm_error

StockoutCode = Literal["ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "ZONE_RESOURCE_POOL_EXHAUSTED"]
QuotaMode = Literal["sync", "operation"]
StormKind = Literal["429", "403", "503"]


@dataclass
class Stockout:
    zone: str
    # None: every insert/start in the zone fails until the stockout is cleared.
    remaining: int | None
    code: StockoutCode


@dataclass
class QuotaFault:
    remaining: int
    mode: QuotaMode
    zone: str | None
    metric: str
    limit: float


@dataclass
class Storm:
    id: int
    kind: StormKind
    remaining: int
    method: str | None
    path_prefix: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path_prefix or path.startswith(self.path_prefix)


def _use(remaining: int | None) -> tuple[bool, int | None]:
    """(fires now, what is left); None means unlimited."""
    if remaining is None:
        return True, None
    return remaining > 0, remaining - 1


class GceFaults:
    def __init__(self) -> None:
        self.stockouts: dict[str, Stockout] = {}
        self.quotas: list[QuotaFault] = []
        self.storms: list[Storm] = []
        # The next this-many insert operations stay RUNNING for ever.
        self.hanging_inserts = 0
        self._ids = itertools.count(1)

    def take_stockout(self, zone: str) -> StockoutCode | None:
        stockout = self.stockouts.get(zone)
        if stockout is None:
            return None
        fires, stockout.remaining = _use(stockout.remaining)
        if stockout.remaining == 0:
            del self.stockouts[zone]
        return stockout.code if fires else None

    def take_quota(self, zone: str, mode: QuotaMode) -> QuotaFault | None:
        for fault in self.quotas:
            if fault.mode == mode and fault.zone in (None, zone) and fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.quotas.remove(fault)
                return fault
        return None

    def take_hang(self) -> bool:
        if self.hanging_inserts > 0:
            self.hanging_inserts -= 1
            return True
        return False

    def add_storm(
        self, kind: StormKind, count: int, method: str | None, path_prefix: str | None
    ) -> Storm:
        storm = Storm(next(self._ids), kind, count, method, path_prefix)
        self.storms.append(storm)
        return storm

    def take_storm(self, method: str, path: str) -> GceError | None:
        for storm in self.storms:
            if storm.remaining > 0 and storm.matches(method, path):
                storm.remaining -= 1
                if storm.remaining == 0:
                    self.storms.remove(storm)
                return storm_error(storm.kind)
        return None

    def clear(self) -> None:
        self.stockouts.clear()
        self.quotas.clear()
        self.storms.clear()
        self.hanging_inserts = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stockouts": [asdict(s) for s in self.stockouts.values()],
            "quotas": [asdict(q) for q in self.quotas],
            "storms": [asdict(s) for s in self.storms],
            "hanging_inserts": self.hanging_inserts,
        }
