"""The metrics history behind `GET /api/v1/machines/{id}/metrics`: bounded series of
(bucket start, average, maximum), read from rollups only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, func, select

from core.metrics.rollup import HOUR, MINUTE
from core.models import metric_rollups

RangeName = Literal["24h", "7d", "30d"]
SeriesGroup = Literal["gpu", "vram", "cpu", "ram", "disk", "net"]


@dataclass(frozen=True)
class RangePlan:
    seconds: int
    step_seconds: int
    resolution: int  # the rollup the buckets are built from


RANGES: dict[str, RangePlan] = {
    "24h": RangePlan(24 * HOUR, 5 * MINUTE, MINUTE),  # 288 points
    "7d": RangePlan(7 * 24 * HOUR, HOUR, HOUR),  # 168 points
    "30d": RangePlan(30 * 24 * HOUR, 4 * HOUR, HOUR),  # 180 points
}

SERIES_GROUPS: dict[str, tuple[str, ...]] = {
    "gpu": ("gpu_utilization",),
    "vram": ("gpu_memory_used_mb", "gpu_memory_total_mb"),
    "cpu": ("cpu_percent",),
    "ram": ("memory_used_mb", "memory_total_mb"),
    "disk": ("disk_used_gb", "disk_total_gb"),
    "net": ("net_rx_bytes_per_s", "net_tx_bytes_per_s"),
}

Point = tuple[datetime, float | None, float | None]  # bucket start, average, maximum


@dataclass(frozen=True)
class MetricsHistory:
    range: str
    step_seconds: int
    series: dict[str, list[Point]]


def metrics_history(
    conn: Connection,
    machine_id: str,
    range_name: RangeName,
    groups: list[SeriesGroup],
    now: datetime,
) -> MetricsHistory:
    """Every bucket of the range, oldest first, the current (partial) one last; a bucket
    without samples has average and maximum None, so a chart shows the gap."""
    plan = RANGES[range_name]
    step = plan.step_seconds
    end = int(now.timestamp()) // step * step + step
    start = end - plan.seconds
    series = [name for group in groups for name in SERIES_GROUPS[group]]
    bucket = (metric_rollups.c.bucket_start - metric_rollups.c.bucket_start % step).label("b")
    columns: list[Any] = [bucket]
    for name in series:
        columns += [
            func.sum(metric_rollups.c[f"{name}_sum"]),
            func.sum(metric_rollups.c[f"{name}_count"]),
            func.max(metric_rollups.c[f"{name}_max"]),
        ]
    rows = conn.execute(
        select(*columns)
        .where(
            metric_rollups.c.machine_id == machine_id,
            metric_rollups.c.resolution == plan.resolution,
            metric_rollups.c.bucket_start >= start,
            metric_rollups.c.bucket_start < end,
        )
        .group_by(bucket)
    ).all()
    by_bucket = {int(row[0]): row for row in rows}
    out: dict[str, list[Point]] = {name: [] for name in series}
    for bucket_start in range(start, end, step):
        at = datetime.fromtimestamp(bucket_start, UTC)
        row = by_bucket.get(bucket_start)
        for i, name in enumerate(series):
            total, count, peak = row[1 + 3 * i : 4 + 3 * i] if row is not None else (0, 0, None)
            if count:
                out[name].append((at, total / count, peak))
            else:
                out[name].append((at, None, None))
    return MetricsHistory(range=range_name, step_seconds=step, series=out)
