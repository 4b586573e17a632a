"""Schedules fire at the same local wall-clock time on both sides of a daylight saving change,
as the Temporal server computes them (checked against Python's own tz database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from core.contracts.schedules import ScheduleKind, schedule_id
from core.schedules import delete_machine_schedules, set_machine_schedule


def next_offset_change(zone: ZoneInfo, after: datetime) -> datetime:
    """Local midnight of the first day after `after` whose noon has another UTC offset than
    the day before's (the change itself happens in that night, before 09:00)."""
    day = after.astimezone(zone).replace(hour=12, minute=0, second=0, microsecond=0)
    offset = day.utcoffset()
    for _ in range(400):
        day = (day + timedelta(days=1)).replace(tzinfo=zone)
        if day.utcoffset() != offset:
            return day.replace(hour=0)
    raise AssertionError(f"{zone.key} has no offset change within a year")


@pytest.mark.parametrize("zone_name", ["America/New_York", "Europe/Berlin", "Australia/Sydney"])
async def test_wake_stays_at_nine_local_across_a_dst_change(
    dev_env: WorkflowEnvironment, zone_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    change = next_offset_change(zone, datetime.now(UTC))
    start_at = (change - timedelta(days=4)).astimezone(UTC)
    machine_id = f"dst{uuid.uuid4().hex[:8]}"
    client = dev_env.client
    try:
        schedule = await set_machine_schedule(
            client,
            machine_id,
            task_queue="no-worker",
            wake_time="09:00",
            sleep_time=None,
            timezone=zone_name,
            start_at=start_at,
        )
        handle = client.get_schedule_handle(schedule_id(machine_id, ScheduleKind.WAKE))
        times = list((await handle.describe()).info.next_action_times)
    finally:
        assert await delete_machine_schedules(client, machine_id)
    assert not await delete_machine_schedules(client, machine_id)  # none left: not an error

    assert schedule.next_wake == times[0] and schedule.next_sleep is None
    assert len(times) == 10
    local = [t.astimezone(zone) for t in times]
    assert [(t.hour, t.minute) for t in local] == [(9, 0)] * 10
    # One a day, from the first day on or after start_at, straight through the change.
    assert [(b.date() - a.date()).days for a, b in zip(local, local[1:], strict=False)] == [1] * 9
    if start_at > datetime.now(UTC):
        assert local[0].date() == (change - timedelta(days=4)).date()
    utc_hours = [t.hour for t in times]
    before = [t.hour for t, day in zip(times, local, strict=True) if day.date() < change.date()]
    after = [t.hour for t, day in zip(times, local, strict=True) if day.date() >= change.date()]
    assert before and after, utc_hours
    assert len(set(before)) == len(set(after)) == 1 and set(before) != set(after)
    offset_before = (change - timedelta(hours=12)).utcoffset()
    offset_after = (change + timedelta(hours=12)).utcoffset()
    assert offset_before is not None and offset_after is not None
    assert before[0] == (datetime(2000, 1, 1, 9) - offset_before).hour
    assert after[0] == (datetime(2000, 1, 1, 9) - offset_after).hour
    if zone_name == "America/New_York" and change.month == 3:
        assert (before[0], after[0]) == (14, 13)  # EST 09:00 = 14:00 UTC; EDT 09:00 = 13:00 UTC
