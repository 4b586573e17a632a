"""`/api/v1/machines`: create, list, read, act on and delete machines, and read their events.

Reads come from the database projection; actions go to the machine's workflow as updates.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import select
from temporalio.service import RPCError

from api.deps import (
    ActionContext,
    CurrentUser,
    MachineClientDep,
    OwnedMachine,
    Reason,
    SessionDep,
    SettingsDep,
)
from api.pagination import Page, Pager, newest_first, pager
from api.schemas.common import ACTION_RESPONSES, COMMON_RESPONSES, ActionAccepted, ErrorOut
from api.schemas.machines import EventOut, MachineCreate, MachineOut
from api.services import machines as service
from api.services import quota
from core.contracts.states import MachineState
from core.models import Event, Machine
from core.schedules import delete_machine_schedules

log = logging.getLogger(__name__)

EventsPage = Annotated[Pager, Depends(pager(100))]

router = APIRouter(prefix=service.MACHINES_PATH, tags=["machines"], responses=COMMON_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MachineOut,
    responses={
        409: {
            "model": ErrorOut,
            "description": "The provider cannot run this kind, or your machine quota is reached",
        }
    },
)
async def create_machine(
    body: MachineCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    machines: MachineClientDep,
) -> Machine:
    return await service.create_machine(
        session=session,
        machines=machines,
        task_queue=settings.task_queue,
        quota=settings.max_machines_per_owner,
        owner_id=user.id,
        body=body,
    )


@router.get("", response_model=list[MachineOut])
def list_machines(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    page: Page,
    status_filter: Annotated[MachineState | None, Query(alias="status")] = None,
) -> list[MachineOut]:
    """Your machines, newest first."""
    return service.list_machines(
        session=session, settings=settings, owner_id=user.id, status=status_filter, page=page
    )


@router.get("/{machine_id}", response_model=MachineOut)
def get_machine(machine: OwnedMachine, session: SessionDep, settings: SettingsDep) -> MachineOut:
    return service.machines_out(session, settings, [machine])[0]


@router.get("/{machine_id}/events", response_model=list[EventOut])
def list_events(machine: OwnedMachine, session: SessionDep, page: EventsPage) -> list[Event]:
    """The machine's events, newest first."""
    query = select(Event).where(Event.machine_id == machine.id)
    return page.rows(session, query, newest_first(Event.timestamp, Event.id))


@router.post("/{machine_id}/stop", responses=ACTION_RESPONSES)
async def stop_machine(action: ActionContext, reason: Reason = None) -> MachineOut | ActionAccepted:
    """Stop the instance; the disk stays on the host and GPU billing stops."""
    return await service.act(action, "stop", reason)


@router.post("/{machine_id}/start", responses=ACTION_RESPONSES)
async def start_machine(
    action: ActionContext, reason: Reason = None
) -> MachineOut | ActionAccepted:
    """Start a stopped machine on its host."""
    return await service.act(action, "start", reason)


@router.post("/{machine_id}/restart", responses=ACTION_RESPONSES)
async def restart_machine(
    action: ActionContext, reason: Reason = None
) -> MachineOut | ActionAccepted:
    """Reboot the instance."""
    return await service.act(action, "restart", reason)


@router.post("/{machine_id}/pause", responses=ACTION_RESPONSES)
async def pause_machine(
    action: ActionContext, reason: Reason = None
) -> MachineOut | ActionAccepted:
    """Snapshot the workspace (a safety copy against losing the host), then stop the instance:
    GPU billing stops, the disk stays on the host. A failed snapshot leaves it running."""
    return await service.act(action, "pause", reason)


@router.post("/{machine_id}/resume", responses=ACTION_RESPONSES)
async def resume_machine(
    action: ActionContext, reason: Reason = None
) -> MachineOut | ActionAccepted:
    """Start a paused machine on its host; when the host cannot take it back, on a new offer
    with the pause's snapshot restored. A machine hibernated after a long pause is woken."""
    limit = action.settings.max_machines_per_owner
    await run_in_threadpool(quota.check_wake, action.session, action.machine, limit)
    return await service.act(action, "resume", reason)


@router.delete("/{machine_id}", responses=ACTION_RESPONSES)
async def destroy_machine(
    action: ActionContext, reason: Reason = None
) -> MachineOut | ActionAccepted:
    """Destroy the instance and end the machine; its record and events are kept, its wake/sleep
    schedules removed."""
    result = await service.act(action, "destroy", reason)
    machine_id = action.machine.id
    try:
        await delete_machine_schedules(action.machines.client, machine_id)
    except RPCError as exc:  # the destroy stands; a leftover trigger only finds it destroyed
        log.warning("could not remove the schedules of %s: %s", machine_id, exc)
    return result
