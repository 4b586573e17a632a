"""A machine's metrics as the API returns them, made ready to draw: labels, units, summary
numbers and the samples grouped into as many columns as a chart has room for.

Standard library only: both the terminal chart and the PNG chart draw from it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Units shown in a larger unit once they pass 1024 of the smaller.
UNIT_STEPS = {"MB": ["MB", "GB", "TB"], "GB": ["GB", "TB"], "B/s": ["B/s", "KB/s", "MB/s", "GB/s"]}
RANGE_SECONDS = {"24h": 24 * 3600, "7d": 7 * 24 * 3600, "30d": 30 * 24 * 3600}


@dataclass(frozen=True)
class Kind:
    """How one series reads: its label, its unit and whether it is a 0..100 percentage."""

    label: str
    unit: str
    percent: bool = False


# The API's series names. Unknown names still draw, labelled after the name itself.
KINDS = {
    "gpu_utilization": Kind("GPU utilisation", "%", percent=True),
    "gpu_memory_used_mb": Kind("VRAM used", "MB"),
    "gpu_memory_total_mb": Kind("VRAM total", "MB"),
    "cpu_percent": Kind("CPU", "%", percent=True),
    "memory_used_mb": Kind("RAM used", "MB"),
    "memory_total_mb": Kind("RAM total", "MB"),
    "disk_used_gb": Kind("Disk used", "GB"),
    "disk_total_gb": Kind("Disk total", "GB"),
    "net_rx_bytes_per_s": Kind("Network in", "B/s"),
    "net_tx_bytes_per_s": Kind("Network out", "B/s"),
}


def kind_of(name: str) -> Kind:
    if name in KINDS:
        return KINDS[name]
    percent = name.endswith(("_percent", "_utilization"))
    label = name.replace("_", " ").capitalize()
    return Kind(label, "%" if percent else "", percent=percent)


@dataclass(frozen=True)
class Point:
    """One time bucket: its start (epoch seconds), the mean and the peak within it."""

    ts: float
    avg: float | None
    peak: float | None


# A "used" series and the series of its capacity: drawn as one chart scaled to the capacity.
CAPACITY_OF = {
    "gpu_memory_used_mb": "gpu_memory_total_mb",
    "memory_used_mb": "memory_total_mb",
    "disk_used_gb": "disk_total_gb",
}


@dataclass(frozen=True)
class Series:
    name: str
    kind: Kind
    points: list[Point]
    capacity: float | None = None  # the latest known total, for "used" series

    def values(self) -> list[float]:
        return [p.avg for p in self.points if p.avg is not None]

    @property
    def has_data(self) -> bool:
        return bool(self.values())

    @property
    def average(self) -> float | None:
        values = self.values()
        return sum(values) / len(values) if values else None

    @property
    def minimum(self) -> float | None:
        values = self.values()
        return min(values) if values else None

    @property
    def maximum(self) -> float | None:
        """The highest peak (or mean, where a bucket has no peak)."""
        known = [v for p in self.points for v in (p.avg, p.peak) if v is not None]
        return max(known) if known else None

    @property
    def latest(self) -> float | None:
        values = self.values()
        return values[-1] if values else None

    def summary(self) -> list[tuple[str, str]]:
        """(name, value) pairs a chart's title shows."""
        unit = self.kind.unit
        pairs = [
            (name, human(value, unit))
            for name, value in (
                ("now", self.latest),
                ("avg", self.average),
                ("min", self.minimum),
                ("max", self.maximum),
            )
        ]
        if self.capacity is not None:
            pairs.append(("of", human(self.capacity, unit)))
        return pairs

    def scale_top(self) -> float:
        """The value at the top of a chart: 100 for percentages, the capacity of a "used"
        series, else a round number ≥ max."""
        if self.kind.percent:
            return 100.0
        peak = self.maximum or 0.0
        if self.capacity and self.capacity >= peak:
            return self.capacity  # a full disk reaches the top
        # Round in the unit the label will show (20 GB, not 19.5 GB from 20 000 MB).
        divisor, largest = 1.0, 1024 ** (len(UNIT_STEPS.get(self.kind.unit, [""])) - 1)
        while peak / divisor >= 1024 and divisor < largest:
            divisor *= 1024
        return nice_ceiling(peak / divisor) * divisor


@dataclass(frozen=True)
class Metrics:
    machine_id: str
    range: str
    step_seconds: int
    start: float  # epoch seconds: the left edge of every chart
    end: float  # the right edge
    series: list[Series]


def bridge_seconds(metrics: Metrics) -> float:
    """The longest gap a chart joins up: a missed report or two, not an outage."""
    return 2.5 * metrics.step_seconds


def parse_timestamp(value: Any) -> float:
    """Epoch seconds from epoch numbers or ISO 8601 text (`Z` or an offset; naive is UTC)."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def parse_metrics(body: dict[str, Any], now: float) -> Metrics:
    """The API's `{"machine_id", "range", "step_seconds", "series": {name: [[ts, avg, max]]}}`.

    The charts span the whole range ending `now`, so a machine that reported for one hour of
    the last 24 shows one busy hour at the right, not one hour stretched across the chart."""
    range_name = str(body.get("range", "24h"))
    step = int(body.get("step_seconds") or 0)
    parsed: dict[str, list[Point]] = {}
    for name, rows in (body.get("series") or {}).items():
        points = [Point(parse_timestamp(row[0]), _number(row[1]), _number(row[2])) for row in rows]
        parsed[name] = sorted(points, key=lambda p: p.ts)
    capacities = {CAPACITY_OF[name] for name in parsed if CAPACITY_OF.get(name) in parsed}
    series = []
    for name, points in parsed.items():
        if name in capacities:
            continue  # drawn as the scale of its "used" series
        capacity = None
        if name in CAPACITY_OF:
            totals = [p.avg for p in parsed.get(CAPACITY_OF[name], []) if p.avg is not None]
            capacity = totals[-1] if totals else None
        series.append(Series(name=name, kind=kind_of(name), points=points, capacity=capacity))
    last = max((s.points[-1].ts + step for s in series if s.points), default=now)
    end = max(now, last)
    span = RANGE_SECONDS.get(range_name, 24 * 3600)
    return Metrics(
        machine_id=str(body.get("machine_id", "")),
        range=range_name,
        step_seconds=step,
        start=end - span,
        end=end,
        series=series,
    )


@dataclass(frozen=True)
class Column:
    """What falls in one chart column: the mean of the bucket means and the highest peak."""

    avg: float | None
    peak: float | None


def columns(
    series: Series, start: float, end: float, width: int, bridge_seconds: float = 0.0
) -> list[Column]:
    """The samples grouped into `width` equal slices of [start, end).

    Slices with no sample are empty (None), except that gaps no longer than `bridge_seconds`
    (the spacing of the samples when there are more slices than samples) are interpolated."""
    sums = [0.0] * width
    counts = [0] * width
    peaks: list[float | None] = [None] * width
    span = max(end - start, 1e-9)
    for point in series.points:
        if point.avg is None or not start <= point.ts < end:
            continue
        index = min(width - 1, int((point.ts - start) / span * width))
        sums[index] += point.avg
        counts[index] += 1
        peak = point.peak if point.peak is not None else point.avg
        current = peaks[index]
        peaks[index] = peak if current is None else max(current, peak)
    means = [sums[i] / counts[i] if counts[i] else 0.0 for i in range(width)]
    tops = [peak if peak is not None else 0.0 for peak in peaks]
    filled = [i for i in range(width) if counts[i]]
    bridged: list[int] = []
    for left, right in zip(filled, filled[1:], strict=False):
        if right - left < 2 or (right - left) * span / width > bridge_seconds:
            continue
        for i in range(left + 1, right):
            f = (i - left) / (right - left)
            means[i] = means[left] + (means[right] - means[left]) * f
            tops[i] = tops[left] + (tops[right] - tops[left]) * f
            bridged.append(i)
    known = set(filled) | set(bridged)
    return [Column(means[i], tops[i]) if i in known else Column(None, None) for i in range(width)]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^n that is ≥ value (1 for nothing)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = factor * 10**exponent
        if candidate >= value:
            return candidate
    return 10.0 ** (exponent + 1)


def human(value: float | None, unit: str) -> str:
    """`42.1%`, `18.4 GB` (from MB), `1.2 KB/s`: short enough for an axis label."""
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.1f}%"
    if unit in ("MB", "GB", "B/s"):
        steps = UNIT_STEPS[unit]
        index = 0
        while abs(value) >= 1024 and index < len(steps) - 1:
            value /= 1024
            index += 1
        return f"{value:.1f} {steps[index]}" if index or unit != "B/s" else f"{value:.0f} B/s"
    if unit:
        return f"{value:.1f} {unit}"
    return f"{value:.1f}"


def axis_label(value: float, unit: str) -> str:
    """`human` without a trailing `.0`: `100%`, `20 GB`, and a bare `0` but for `0%`."""
    if value == 0 and unit != "%":
        return "0"
    return re.sub(r"\.0(?!\d)", "", human(value, unit))


def span_text(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"
