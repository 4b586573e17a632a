"""A machine's wake/sleep schedule as two Temporal Schedules, `machine-{id}-wake` and
`machine-{id}-sleep`: create or replace, describe and delete them (client side).

Each fires at a wall-clock time in an IANA time zone (so 09:00 stays 09:00 across daylight
saving changes) and starts a `ScheduleTriggerWorkflow`, which sends the machine workflow its
`wake` or `hibernate` update. The Schedules are the truth; the `machines` row keeps a copy of
what the user set.
"""

from __future__ import annotations

import asyncio
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from core.contracts.schedules import (
    TRIGGER_WORKFLOW,
    ScheduleKind,
    ScheduleMode,
    ScheduleTriggerInput,
    schedule_id,
)

# A schedule missed while the server was down fires late only within this window: a wake
# hours after its time would rent a GPU nobody asked for any more.
CATCHUP_WINDOW = timedelta(minutes=10)
# A trigger waits for the whole wake or hibernate; past this the trigger is given up.
TRIGGER_TIMEOUT = timedelta(hours=3)

_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_VERB = {
    (ScheduleKind.WAKE, ScheduleMode.HIBERNATE): "wake",
    (ScheduleKind.SLEEP, ScheduleMode.HIBERNATE): "hibernate",
    (ScheduleKind.WAKE, ScheduleMode.PAUSE): "resume",
    (ScheduleKind.SLEEP, ScheduleMode.PAUSE): "pause",
}


def parse_time(value: str) -> tuple[int, int]:
    """`"09:00"` (or `"9:00"`) → (9, 0); ValueError for anything else, e.g. `"9am"`, `"25:00"`."""
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise ValueError("not a time: use HH:MM, e.g. 09:00")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError("not a time of day: use 00:00 to 23:59")
    return hour, minute


def normalise_time(value: str) -> str:
    hour, minute = parse_time(value)
    return f"{hour:02d}:{minute:02d}"


def check_timezone(name: str) -> str:
    """An IANA zone name known to zoneinfo (`America/Sao_Paulo`); ValueError otherwise. The
    messages never repeat the input (the API echoes no request input)."""
    try:
        if name == "localtime":  # the host's own zone, whatever that is: not a place
            raise ValueError(name)
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            "unknown time zone: use an IANA name, e.g. America/Sao_Paulo or UTC"
        ) from None
    return name


@dataclass(frozen=True)
class MachineSchedule:
    machine_id: str
    wake_time: str | None
    sleep_time: str | None
    timezone: str
    next_wake: datetime | None
    next_sleep: datetime | None
    mode: ScheduleMode = ScheduleMode.HIBERNATE


def _what(kind: ScheduleKind, mode: ScheduleMode) -> str:
    """The event's word for a fire: "sleep"/"wake", or "pause"/"resume" in pause mode."""
    return kind.value if mode is ScheduleMode.HIBERNATE else _VERB[kind, mode]


def note(machine_id: str, kind: ScheduleKind, at: str, timezone: str, mode: ScheduleMode) -> str:
    """The line the Temporal Web UI shows with the schedule."""
    return f"{_VERB[kind, mode]} machine {machine_id} at {at} {timezone}"


def build_schedule(
    machine_id: str,
    kind: ScheduleKind,
    at: str,
    timezone: str,
    *,
    task_queue: str,
    mode: ScheduleMode = ScheduleMode.HIBERNATE,
    start_at: datetime | None = None,
) -> Schedule:
    """The Schedule firing `kind` every day at `at` ("HH:MM") in `timezone`; `start_at` skips
    every time before it (tests use it to look at a given date's fire times)."""
    hour, minute = parse_time(at)
    at = f"{hour:02d}:{minute:02d}"
    return Schedule(
        action=ScheduleActionStartWorkflow(
            TRIGGER_WORKFLOW,
            ScheduleTriggerInput(
                machine_id=machine_id,
                kind=kind,
                reason=f"scheduled {_what(kind, mode)} at {at} {timezone}",
                mode=mode,
            ),
            id=schedule_id(machine_id, kind),
            task_queue=task_queue,
            execution_timeout=TRIGGER_TIMEOUT,
            static_summary=note(machine_id, kind, at, timezone, mode),
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(hour)],
                    minute=[ScheduleRange(minute)],
                    comment=f"{at} {timezone}",
                )
            ],
            time_zone_name=timezone,
            start_at=start_at,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=note(machine_id, kind, at, timezone, mode)),
    )


def _not_found(err: RPCError) -> bool:
    return err.status == RPCStatusCode.NOT_FOUND


async def _upsert(
    client: Client, machine_id: str, kind: ScheduleKind, schedule: Schedule, mode: ScheduleMode
) -> None:
    sid = schedule_id(machine_id, kind)
    try:
        await client.create_schedule(
            sid,
            schedule,
            memo={"machine_id": machine_id, "kind": kind.value, "mode": mode.value},
        )
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(sid).update(replace)


async def _delete(client: Client, machine_id: str, kind: ScheduleKind) -> bool:
    """True if the schedule existed."""
    try:
        await client.get_schedule_handle(schedule_id(machine_id, kind)).delete()
    except RPCError as err:
        if _not_found(err):
            return False
        raise
    return True


async def _describe(
    client: Client, machine_id: str, kind: ScheduleKind
) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(schedule_id(machine_id, kind)).describe()
    except RPCError as err:
        if _not_found(err):
            return None
        raise


def _time_of(description: ScheduleDescription | None) -> str | None:
    if description is None or not description.schedule.spec.calendars:
        return None
    calendar = description.schedule.spec.calendars[0]
    return f"{calendar.hour[0].start:02d}:{calendar.minute[0].start:02d}"


def _mode_of(description: ScheduleDescription | None) -> ScheduleMode | None:
    """The mode its trigger sends (a schedule made before modes has none: hibernate)."""
    if description is None:
        return None
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.args:
        return None
    arg = action.args[0]
    if isinstance(arg, Payload):  # a described schedule's arguments come back undecoded
        arg = DataConverter.default.payload_converter.from_payload(arg, ScheduleTriggerInput)
    return arg.mode if isinstance(arg, ScheduleTriggerInput) else ScheduleMode.HIBERNATE


def _next(description: ScheduleDescription | None) -> datetime | None:
    if description is None or not description.info.next_action_times:
        return None
    return description.info.next_action_times[0]


async def set_machine_schedule(
    client: Client,
    machine_id: str,
    *,
    task_queue: str,
    wake_time: str | None,
    sleep_time: str | None,
    timezone: str,
    mode: ScheduleMode = ScheduleMode.HIBERNATE,
    start_at: datetime | None = None,
) -> MachineSchedule:
    """Create or replace the schedules asked for and delete the other one; `mode` says whether
    they hibernate and wake or pause and resume the machine. Times and zone are
    checked first (ValueError), so bad input changes nothing; a zone Temporal does not know
    raises RPCError INVALID_ARGUMENT, also before any change."""
    if wake_time is None and sleep_time is None:
        raise ValueError("give a wake time, a sleep time or both")
    check_timezone(timezone)
    times = {ScheduleKind.WAKE: wake_time, ScheduleKind.SLEEP: sleep_time}
    schedules = {
        kind: build_schedule(
            machine_id, kind, at, timezone, task_queue=task_queue, mode=mode, start_at=start_at
        )
        for kind, at in times.items()
        if at is not None
    }
    # Writes before deletes: should Temporal refuse the zone (its tz database is not Python's),
    # the first write fails and nothing has changed.
    for kind, schedule in schedules.items():
        await _upsert(client, machine_id, kind, schedule, mode)
    for kind in ScheduleKind:
        if kind not in schedules:
            await _delete(client, machine_id, kind)
    found = await get_machine_schedule(client, machine_id)
    assert found is not None  # just written
    return found


async def get_machine_schedule(client: Client, machine_id: str) -> MachineSchedule | None:
    """The machine's schedule as Temporal has it, with the next fire times; None if none."""
    wake, sleep = await asyncio.gather(
        _describe(client, machine_id, ScheduleKind.WAKE),
        _describe(client, machine_id, ScheduleKind.SLEEP),
    )
    if wake is None and sleep is None:
        return None
    zone = next(
        (
            d.schedule.spec.time_zone_name
            for d in (wake, sleep)
            if d is not None and d.schedule.spec.time_zone_name
        ),
        None,
    )
    return MachineSchedule(
        machine_id=machine_id,
        wake_time=_time_of(wake),
        sleep_time=_time_of(sleep),
        timezone=zone or "UTC",
        next_wake=_next(wake),
        next_sleep=_next(sleep),
        mode=_mode_of(wake) or _mode_of(sleep) or ScheduleMode.HIBERNATE,
    )


async def delete_machine_schedules(client: Client, machine_id: str) -> bool:
    """Remove both schedules, whichever exist; True if there was any. Call it when the machine
    is destroyed (a missing schedule is fine)."""
    removed = await asyncio.gather(*(_delete(client, machine_id, kind) for kind in ScheduleKind))
    return any(removed)
