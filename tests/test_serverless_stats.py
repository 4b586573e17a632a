"""The serverless status's figures as pure functions: time asleep within a window, what it saved,
and resume latency percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.serverless.stats import Asleep, asleep_between, latency, pause_savings, percentile

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_time_asleep_counts_only_within_the_window() -> None:
    changes = [
        (at(10), "pausing"),
        (at(11), "paused"),
        (at(41), "hibernated"),
        (at(61), "waking"),
        (at(62), "running"),
        (at(90), "paused"),
    ]
    asleep = asleep_between(changes, state_at_start="running", start=at(0), end=at(100))
    assert asleep == Asleep(paused_seconds=(30 + 10) * 60, hibernated_seconds=20 * 60)
    assert asleep.seconds == 60 * 60


def test_a_pause_open_at_the_start_counts_from_the_start() -> None:
    asleep = asleep_between([(at(30), "running")], state_at_start="paused", start=at(0), end=at(60))
    assert asleep.paused_seconds == 30 * 60
    nothing = asleep_between([], state_at_start=None, start=at(0), end=at(60))
    assert nothing == Asleep()


def test_savings_are_the_gpu_hours_less_the_disk_and_the_storage() -> None:
    asleep = Asleep(paused_seconds=3600, hibernated_seconds=3600)
    plain = pause_savings(
        asleep,
        price_per_hour=0.40,
        disk_price_per_hour=0.02,
        stored_bytes=0,
        price_per_gb_month=0.02,
        now=T0,
    )
    assert abs(plain - (0.80 - 0.02)) < 1e-9
    stored = pause_savings(
        asleep,
        price_per_hour=0.40,
        disk_price_per_hour=0.02,
        stored_bytes=730 * 10**9,  # 730 GB for 2 of the month's 730 hours: $0.04 at $0.02/GB
        price_per_gb_month=0.02,
        now=T0,
    )
    assert abs(plain - stored - 0.04) < 1e-9
    unpriced = pause_savings(
        asleep,
        price_per_hour=None,
        disk_price_per_hour=None,
        stored_bytes=0,
        price_per_gb_month=0.02,
        now=T0,
    )
    assert unpriced == 0.0


def test_latency_is_a_mean_and_a_measured_p95() -> None:
    assert latency([]).count == 0 and latency([]).p95 is None
    values = [float(v) for v in range(1, 101)]  # 1..100 ms
    figures = latency(values)
    assert (figures.mean, figures.p95, figures.count) == (50.5, 95.0, 100)
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0, 3.0], 95) == 3.0
