"""`/api/instances/{id}/schedule`: a machine's daily wake and sleep times.

The schedules themselves are Temporal Schedules (core/schedules.py); the machine row keeps a
copy of what the user set, written after Temporal accepted it.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session
from temporalio.service import RPCError, RPCStatusCode

from api.deps import LiveMachine, OwnedMachine, SessionDep, SettingsDep, TemporalDep
from api.errors import invalid
from api.schemas.common import UNAUTHORIZED, UNAVAILABLE, ErrorOut
from api.schemas.schedules import ScheduleDeleted, ScheduleIn, ScheduleOut
from core.contracts.schedules import ScheduleMode
from core.models import Machine, utcnow
from core.schedules import (
    MachineSchedule,
    delete_machine_schedules,
    get_machine_schedule,
    set_machine_schedule,
)

router = APIRouter(
    prefix="/api/instances",
    tags=["schedules"],
    responses={
        **UNAUTHORIZED,
        404: {"model": ErrorOut, "description": "No such machine (or not yours), or no schedule"},
        **UNAVAILABLE,
    },
)


def _out(schedule: MachineSchedule) -> ScheduleOut:
    return ScheduleOut(
        instance_id=schedule.machine_id,
        wake_time=schedule.wake_time,
        sleep_time=schedule.sleep_time,
        timezone=schedule.timezone,
        mode=schedule.mode,
        next_wake=schedule.next_wake,
        next_sleep=schedule.next_sleep,
    )


def _store(
    session: Session,
    machine: Machine,
    wake: str | None,
    sleep: str | None,
    zone: str | None,
    mode: ScheduleMode = ScheduleMode.HIBERNATE,
) -> None:
    machine.wake_time, machine.sleep_time, machine.schedule_timezone = wake, sleep, zone
    machine.schedule_action = mode.value
    machine.updated_at = utcnow()
    session.add(machine)
    session.commit()


@router.put(
    "/{machine_id}/schedule",
    response_model=ScheduleOut,
    responses={409: {"model": ErrorOut, "description": "The machine is destroyed"}},
)
async def put_schedule(
    body: ScheduleIn,
    machine: LiveMachine,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> ScheduleOut:
    """Wake and/or hibernate (or, with `mode: pause`, resume and/or pause) the machine every
    day at these local times; replaces the machine's schedule (a time left out is removed)."""
    try:
        schedule = await set_machine_schedule(
            temporal,
            machine.id,
            task_queue=settings.task_queue,
            wake_time=body.wake_time,
            sleep_time=body.sleep_time,
            timezone=body.timezone,
            mode=body.mode,
        )
    except RPCError as err:
        if err.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        # Python knew the zone and Temporal's tz database does not (nothing was written).
        raise invalid(("body", "timezone"), err.message) from None
    await run_in_threadpool(
        _store, session, machine, body.wake_time, body.sleep_time, body.timezone, body.mode
    )
    return _out(schedule)


@router.get("/{machine_id}/schedule", response_model=ScheduleOut)
async def get_schedule(machine: OwnedMachine, temporal: TemporalDep) -> ScheduleOut:
    schedule = await get_machine_schedule(temporal, machine.id)
    if schedule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"machine {machine.id} has no schedule")
    return _out(schedule)


@router.delete("/{machine_id}/schedule", response_model=ScheduleDeleted)
async def delete_schedule(
    machine: OwnedMachine, session: SessionDep, temporal: TemporalDep
) -> ScheduleDeleted:
    removed = await delete_machine_schedules(temporal, machine.id)
    stored = machine.wake_time is not None or machine.sleep_time is not None
    if not removed and not stored:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"machine {machine.id} has no schedule")
    await run_in_threadpool(_store, session, machine, None, None, None)
    return ScheduleDeleted()
