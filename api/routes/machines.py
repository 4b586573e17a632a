"""`/api/v1/machines`: create, list, read, act on and delete machines, and read their events.

Reads come from the database projection; actions go to the machine's workflow as updates.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import col, select
from temporalio.service import RPCError

from api.deps import CurrentUser, MachineClientDep, SessionDep, SettingsDep
from api.schemas import ActionAccepted, ErrorOut, EventOut, MachineCreate, MachineOut
from api.services import machines as service
from core.contracts.states import MachineState
from core.models import Event, Machine
from core.schedules import delete_machine_schedules
from core.settings import Settings
from workflows.client import LifecycleAction

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1/machines",
    tags=["machines"],
    responses={
        401: {"model": ErrorOut, "description": "Missing or invalid token"},
        404: {"model": ErrorOut, "description": "No such machine (or not yours)"},
        503: {"model": ErrorOut, "description": "Temporal is unreachable"},
    },
)

Wait = Annotated[
    bool,
    Query(description="Wait until the action is done (true) or only until it is accepted (false)"),
]
Reason = Annotated[str | None, Query(max_length=500, description="Recorded with the event")]


def owned_machine(machine_id: str, user: CurrentUser, session: SessionDep) -> Machine:
    """The caller's machine; someone else's answers exactly like a missing one."""
    machine = session.get(Machine, machine_id)
    if machine is None or machine.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"machine {machine_id} not found")
    return machine


OwnedMachine = Annotated[Machine, Depends(owned_machine)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MachineOut)
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
        owner_id=user.id,
        machine_id=f"vast_{secrets.token_hex(6)}",
        body=body,
    )


@router.get("", response_model=list[MachineOut])
def list_machines(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    status_filter: Annotated[MachineState | None, Query(alias="status")] = None,
) -> list[MachineOut]:
    return service.list_machines(
        session=session, settings=settings, owner_id=user.id, status=status_filter
    )


@router.get("/{machine_id}", response_model=MachineOut)
def get_machine(machine: OwnedMachine, session: SessionDep, settings: SettingsDep) -> MachineOut:
    return service.machines_out(session, settings, [machine])[0]


@router.get("/{machine_id}/events", response_model=list[EventOut])
def list_events(
    machine: OwnedMachine,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Event]:
    query = (
        select(Event)
        .where(Event.machine_id == machine.id)
        .order_by(col(Event.timestamp).desc(), col(Event.id).desc())
        .limit(limit)
    )
    return list(session.exec(query))


async def _act(
    action: LifecycleAction,
    machine: Machine,
    session: SessionDep,
    settings: Settings,
    machines: MachineClientDep,
    response: Response,
    wait: bool,
    reason: str | None,
) -> MachineOut | ActionAccepted:
    if machine.status == MachineState.DESTROYED:
        raise HTTPException(status.HTTP_409_CONFLICT, "machine is destroyed")
    if not wait:
        await machines.act(machine.id, action, reason=reason, wait=False)
        url = f"{router.prefix}/{machine.id}"
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = url
        return ActionAccepted(machine_id=machine.id, action=action, status_url=url)
    # An action may take minutes: give the connection back to the pool while it runs. A
    # commit (of nothing) rather than a rollback, which would expire `machine` and make the
    # next attribute read a blocking query on the event loop.
    await run_in_threadpool(session.commit)
    result = await machines.act(machine.id, action, reason=reason, wait=True)
    # Activities updated the projection while the action ran.
    await run_in_threadpool(session.refresh, machine)
    [shown] = await run_in_threadpool(service.machines_out, session, settings, [machine])
    # The update's answer is the freshest word on the state, whatever the projection says.
    return shown.model_copy(update={"status": result.state})


_ACTION_RESPONSES: dict[int | str, dict[str, object]] = {
    202: {"model": ActionAccepted, "description": "Accepted (`?wait=false`)"},
    409: {"model": ErrorOut, "description": "The machine's state forbids this action"},
}


@router.post("/{machine_id}/stop", responses=_ACTION_RESPONSES)
async def stop_machine(
    machine: OwnedMachine,
    session: SessionDep,
    settings: SettingsDep,
    machines: MachineClientDep,
    response: Response,
    wait: Wait = True,
    reason: Reason = None,
) -> MachineOut | ActionAccepted:
    """Stop the instance; the disk stays on the host and GPU billing stops."""
    return await _act("stop", machine, session, settings, machines, response, wait, reason)


@router.post("/{machine_id}/start", responses=_ACTION_RESPONSES)
async def start_machine(
    machine: OwnedMachine,
    session: SessionDep,
    settings: SettingsDep,
    machines: MachineClientDep,
    response: Response,
    wait: Wait = True,
    reason: Reason = None,
) -> MachineOut | ActionAccepted:
    """Start a stopped machine on its host."""
    return await _act("start", machine, session, settings, machines, response, wait, reason)


@router.post("/{machine_id}/restart", responses=_ACTION_RESPONSES)
async def restart_machine(
    machine: OwnedMachine,
    session: SessionDep,
    settings: SettingsDep,
    machines: MachineClientDep,
    response: Response,
    wait: Wait = True,
    reason: Reason = None,
) -> MachineOut | ActionAccepted:
    """Reboot the instance."""
    return await _act("restart", machine, session, settings, machines, response, wait, reason)


@router.delete("/{machine_id}", responses=_ACTION_RESPONSES)
async def destroy_machine(
    machine: OwnedMachine,
    session: SessionDep,
    settings: SettingsDep,
    machines: MachineClientDep,
    response: Response,
    wait: Wait = True,
    reason: Reason = None,
) -> MachineOut | ActionAccepted:
    """Destroy the instance and end the machine; its record and events are kept, its wake/sleep
    schedules removed."""
    result = await _act("destroy", machine, session, settings, machines, response, wait, reason)
    try:
        await delete_machine_schedules(machines.client, machine.id)
    except RPCError as exc:  # the destroy stands; a leftover trigger only finds it destroyed
        log.warning("could not remove the schedules of %s: %s", machine.id, exc)
    return result
