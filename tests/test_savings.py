"""Savings math (core/savings.py): GPU hours not billed, less the snapshots' storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.savings import GB, HOURS_PER_MONTH, hibernation_savings

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_a_machine_never_hibernated_saved_nothing() -> None:
    savings = hibernation_savings(
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
    savings = hibernation_savings(
        closed_seconds=3 * 3600,
        closed_cost_avoided=1.20,
        open_since=None,
        open_price_per_hour=0.40,  # not hibernated now: the price is not used
        stored_bytes=0,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert savings.hibernated_hours == pytest.approx(3)
    assert savings.cost_avoided_usd == pytest.approx(1.20)
    assert savings.net_usd == pytest.approx(1.20)


def test_the_open_period_runs_to_now_at_the_hibernated_price() -> None:
    savings = hibernation_savings(
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
    savings = hibernation_savings(
        closed_seconds=HOURS_PER_MONTH * 3600,
        closed_cost_avoided=292.0,  # $0.40/h × 730 h
        open_since=None,
        open_price_per_hour=None,
        stored_bytes=100 * GB,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert savings.storage_cost_usd == pytest.approx(1.5)
    assert savings.net_usd == pytest.approx(292.0 - 1.5)


def test_storage_can_outweigh_a_cheap_gpu() -> None:
    savings = hibernation_savings(
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
    savings = hibernation_savings(
        closed_seconds=0,
        closed_cost_avoided=0,
        open_since=NOW + timedelta(minutes=5),
        open_price_per_hour=1.0,
        stored_bytes=GB,
        price_per_gb_month=0.015,
        now=NOW,
    )
    assert (savings.hibernated_hours, savings.net_usd) == (0, 0)
