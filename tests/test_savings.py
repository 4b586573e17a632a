"""Savings math (core/savings.py): GPU hours not billed while hibernated or paused, less the
stopped disk and the snapshots' storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.savings import GB, HOURS_PER_MONTH, Periods, Savings, machine_savings

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def hibernated_only(
    *,
    closed_seconds: float,
    closed_cost_avoided: float,
    open_since: datetime | None,
    open_price_per_hour: float | None,
    stored_bytes: int,
    price_per_gb_month: float,
    now: datetime,
) -> Savings:
    return machine_savings(
        hibernated=Periods(
            closed_seconds=closed_seconds,
            closed_cost_avoided=closed_cost_avoided,
            open_since=open_since,
            open_price_per_hour=open_price_per_hour,
        ),
        paused=Periods(),
        closed_disk_cost=0.0,
        disk_price_per_hour=None,
        stored_bytes=stored_bytes,
        price_per_gb_month=price_per_gb_month,
        now=now,
    )


def test_a_machine_never_hibernated_saved_nothing() -> None:
    savings = hibernated_only(
        closed_seconds=0,
        closed_cost_avoided=0,
        open_since=None,
        open_price_per_hour=None,
        stored_bytes=5 * GB,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert (savings.hibernated_hours, savings.net_usd, savings.storage_cost_usd) == (0, 0, 0)


def test_closed_periods_count_as_the_workflow_summed_them() -> None:
    savings = hibernated_only(
        closed_seconds=3 * 3600,
        closed_cost_avoided=1.20,
        open_since=None,
        open_price_per_hour=0.40,
        stored_bytes=0,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert savings.hibernated_hours == pytest.approx(3)
    assert savings.cost_avoided_usd == pytest.approx(1.20)
    assert savings.net_usd == pytest.approx(1.20)


def test_the_open_period_runs_to_now_at_the_hibernated_price() -> None:
    savings = hibernated_only(
        closed_seconds=3600,
        closed_cost_avoided=0.5,
        open_since=NOW - timedelta(hours=2),
        open_price_per_hour=0.25,
        stored_bytes=0,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert savings.hibernated_hours == pytest.approx(3)
    assert savings.cost_avoided_usd == pytest.approx(0.5 + 2 * 0.25)


def test_storage_over_the_hibernated_hours_is_subtracted() -> None:
    # 100 GB for a whole month of hibernation at $0.015/GB-month: $1.50 of storage.
    savings = hibernated_only(
        closed_seconds=HOURS_PER_MONTH * 3600,
        closed_cost_avoided=292.0,
        open_since=None,
        open_price_per_hour=None,
        stored_bytes=100 * GB,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert savings.storage_cost_usd == pytest.approx(1.5)
    assert savings.net_usd == pytest.approx(292.0 - 1.5)


def test_storage_can_outweigh_a_cheap_gpu() -> None:
    savings = hibernated_only(
        closed_seconds=0,
        closed_cost_avoided=0,
        open_since=NOW - timedelta(hours=HOURS_PER_MONTH),
        open_price_per_hour=0.001,
        stored_bytes=1000 * GB,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert savings.net_usd == pytest.approx(0.73 - 15.0)


def test_a_clock_behind_the_period_start_counts_no_negative_hours() -> None:
    savings = hibernated_only(
        closed_seconds=0,
        closed_cost_avoided=0,
        open_since=NOW + timedelta(minutes=5),
        open_price_per_hour=1.0,
        stored_bytes=GB,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert (savings.hibernated_hours, savings.net_usd) == (0, 0)


def test_paused_hours_save_the_running_price_less_the_stopped_disk_and_the_snapshot() -> None:
    # Paused 10 h (4 closed, 6 open) of a $0.50/h machine whose disk costs $0.02/h stopped,
    # and 100 GB of snapshot at $0.015/GB-month over those 10 h.
    savings = machine_savings(
        hibernated=Periods(),
        paused=Periods(
            closed_seconds=4 * 3600,
            closed_cost_avoided=2.0,
            open_since=NOW - timedelta(hours=6),
            open_price_per_hour=0.50,
        ),
        closed_disk_cost=0.08,
        disk_price_per_hour=0.02,
        stored_bytes=100 * GB,
        price_per_gb_month=0.015,
        now=NOW,
    )
    storage = 100 * 0.015 * 10 / HOURS_PER_MONTH
    assert savings.paused_hours == pytest.approx(10)
    assert savings.cost_avoided_usd == pytest.approx(5.0)
    assert savings.disk_cost_usd == pytest.approx(0.20)
    assert savings.storage_cost_usd == pytest.approx(storage)
    assert savings.net_usd == pytest.approx(5.0 - 0.20 - storage)


def test_a_pause_then_hibernation_counts_both_periods() -> None:
    savings = machine_savings(
        hibernated=Periods(open_since=NOW - timedelta(hours=2), open_price_per_hour=0.40),
        paused=Periods(closed_seconds=24 * 3600, closed_cost_avoided=9.60),
        closed_disk_cost=0.48,
        disk_price_per_hour=0.02,  # not paused now: only the closed disk cost counts
        stored_bytes=0,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert (savings.paused_hours, savings.hibernated_hours) == pytest.approx((24, 2))
    assert savings.net_usd == pytest.approx(9.60 + 0.80 - 0.48)
