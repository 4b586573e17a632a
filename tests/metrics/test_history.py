"""Metrics history: a month of samples written through the heartbeat writer, read back as
bounded series whose averages and maxima match the raw samples; retention keeps rollups."""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from api.ingest.writer import HeartbeatWriter
from core.accounts import create_user
from core.db import session_scope
from core.metrics.liveness import Heartbeat, Transition
from core.metrics.query import RANGES, MetricsHistory, RangeName, metrics_history
from core.metrics.retention import prune_metrics
from core.metrics.rollup import DAY, HOUR, MINUTE
from core.metrics.samples import Sample
from core.models import MetricSample, metric_rollups
from tests.ingest.helpers import add_machine

NOW = datetime(2026, 11, 22, 8, 2, 30, tzinfo=UTC)
DAYS = 31
MAX_POINTS = 300


def _month(machine_id: str) -> list[Sample]:
    """Every 5 minutes for a month; the GPU reading is sometimes unknown (None)."""
    rng = random.Random(7)
    first = NOW - timedelta(days=DAYS)
    samples = []
    for i in range(DAYS * 24 * 12):
        at = first + timedelta(minutes=5 * i, seconds=rng.randrange(0, 60))
        if at > NOW:
            break
        samples.append(
            Sample(
                machine_id=machine_id,
                timestamp=at,
                gpu_utilization=None if rng.random() < 0.05 else round(rng.uniform(0, 100), 2),
                gpu_memory_used_mb=float(rng.randrange(0, 24576)),
                gpu_memory_total_mb=24576.0,
                cpu_percent=round(rng.uniform(0, 100), 1),
                memory_used_mb=float(rng.randrange(1000, 65536)),
                memory_total_mb=65536.0,
                disk_used_gb=round(rng.uniform(10, 90), 2),
                disk_total_gb=100.0,
                net_rx_bytes_per_s=rng.uniform(0, 1e7),
                net_tx_bytes_per_s=rng.uniform(0, 1e6),
                active_users=rng.randrange(0, 3),
                process_count=rng.randrange(0, 5),
            )
        )
    return samples


async def _no_signal(_transition: Transition) -> None:
    pass


@pytest.fixture
def month(engine: Engine) -> Iterator[tuple[str, list[Sample]]]:
    with session_scope(engine) as session:
        owner = create_user(session, "alice").id
    machine = add_machine(engine, owner)
    yield machine.id, _month(machine.id)


async def _write(engine: Engine, samples: list[Sample]) -> None:
    writer = HeartbeatWriter(engine, _no_signal, lambda: NOW)
    for start in range(0, len(samples), 500):
        chunk = samples[start : start + 500]
        last = chunk[-1]
        beat = Heartbeat(
            last.machine_id, NOW, last.timestamp, last.gpu_utilization, 0, None, 30, None
        )
        writer.submit(chunk, beat)
        await writer.flush()


def _expected(
    samples: list[Sample], series: str, start: datetime, step: int
) -> tuple[float | None, float | None]:
    """From the raw samples (sorted by time)."""
    times = [s.timestamp for s in samples]
    lo, hi = bisect_left(times, start), bisect_left(times, start + timedelta(seconds=step))
    values = [getattr(s, series) for s in samples[lo:hi]]
    known = [v for v in values if v is not None]
    if not known:
        return None, None
    return sum(known) / len(known), max(known)


def _history(engine: Engine, machine_id: str, range_name: RangeName) -> MetricsHistory:
    with engine.connect() as conn:
        return metrics_history(
            conn, machine_id, range_name, ["gpu", "vram", "cpu", "ram", "disk", "net"], NOW
        )


def _check(history: MetricsHistory, samples: list[Sample]) -> None:
    plan = RANGES[history.range]
    assert history.step_seconds == plan.step_seconds
    for series, points in history.series.items():
        assert 0 < len(points) <= MAX_POINTS
        assert points[-1][0] <= NOW < points[-1][0] + timedelta(seconds=plan.step_seconds)
        for at, avg, peak in points:
            want_avg, want_peak = _expected(samples, series, at, plan.step_seconds)
            assert peak == want_peak, (series, at)
            if want_avg is None:
                assert avg is None, (series, at)
            else:
                assert avg == pytest.approx(want_avg, rel=1e-9), (series, at)


async def test_each_range_is_bounded_and_exact(
    engine: Engine, month: tuple[str, list[Sample]]
) -> None:
    machine_id, samples = month
    await _write(engine, samples)
    ranges: tuple[RangeName, ...] = ("24h", "7d", "30d")
    for range_name in ranges:
        history = _history(engine, machine_id, range_name)
        assert set(history.series) == {
            "gpu_utilization",
            "gpu_memory_used_mb",
            "gpu_memory_total_mb",
            "cpu_percent",
            "memory_used_mb",
            "memory_total_mb",
            "disk_used_gb",
            "disk_total_gb",
            "net_rx_bytes_per_s",
            "net_tx_bytes_per_s",
        }
        _check(history, samples)


async def test_rollups_merge_samples_split_across_batches(
    engine: Engine, month: tuple[str, list[Sample]]
) -> None:
    """The same minute filled by two batches (an agent's backlog arriving late) stays exact."""
    machine_id, samples = month
    recent = [s for s in samples if s.timestamp > NOW - timedelta(hours=3)]
    await _write(engine, recent[::2])
    await _write(engine, recent[1::2])
    _check(_history(engine, machine_id, "24h"), recent)


def _count(engine: Engine, resolution: int | None = None) -> int:
    table = MetricSample.__table__ if resolution is None else metric_rollups  # type: ignore[attr-defined]
    query = select(func.count()).select_from(table)
    if resolution is not None:
        query = query.where(metric_rollups.c.resolution == resolution)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


async def test_retention_prunes_by_age_and_keeps_rollups(
    engine: Engine, month: tuple[str, list[Sample]]
) -> None:
    machine_id, samples = month
    await _write(engine, samples)
    ranges: tuple[RangeName, ...] = ("24h", "7d", "30d")
    before = {name: _history(engine, machine_id, name) for name in ranges}
    days_before = _count(engine, DAY)

    result = prune_metrics(engine, NOW)

    raw_kept = [s for s in samples if s.timestamp >= NOW - timedelta(hours=48)]
    assert _count(engine) == len(raw_kept)
    assert result.raw_samples == len(samples) - len(raw_kept)
    # Minute rollups: the last 8 days only; hour and day rollups: the whole month.
    with engine.connect() as conn:
        oldest_minute = conn.execute(
            select(func.min(metric_rollups.c.bucket_start)).where(
                metric_rollups.c.resolution == MINUTE
            )
        ).scalar_one()
    assert oldest_minute >= int((NOW - timedelta(days=8)).timestamp())
    assert result.minute_rollups > 0 and result.hour_rollups == 0
    assert _count(engine, HOUR) >= DAYS * 24 and _count(engine, DAY) == days_before
    # Charts do not change: they never read raw samples.
    for name, history in before.items():
        assert _history(engine, machine_id, name) == history
    # A year on, the hour rollups are gone too; the day rollups stay.
    prune_metrics(engine, NOW + timedelta(days=401))
    assert _count(engine) == 0 and _count(engine, HOUR) == 0 and _count(engine, DAY) == days_before


async def test_the_raw_retention_is_configurable(
    engine: Engine, month: tuple[str, list[Sample]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, samples = month
    await _write(engine, samples[-200:])
    monkeypatch.setenv("DUMONT_METRICS_RAW_RETENTION_HOURS", "1")
    prune_metrics(engine, NOW)
    assert _count(engine) == len([s for s in samples if s.timestamp >= NOW - timedelta(hours=1)])
