"""`/api/v1/machines`: create, list, read, act on and delete machines, and read their events.

Reads come from the database projection; actions go to the machine's workflow as updates.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session, SQLModel, col, select
from temporalio.service import RPCError

from api.deps import CurrentUser, SessionDep, SettingsDep, TemporalDep
from api.machine_workflows import Action, run_action, send_action, start_machine_workflow
from api.savings import savings_of
from api.schemas import ActionAccepted, ErrorOut, EventOut, MachineCreate, MachineOut
from core.contracts import machine_workflow_id
from core.contracts.machine import ActionResult
from core.contracts.states import MachineState
from core.models import Event, Machine
from core.schedules import delete_machine_schedules
from core.settings import Settings

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


def _insert_committed(session: Session, *rows: SQLModel) -> None:
    for row in rows:  # one flush each, in order: later rows refer to earlier ones
        session.add(row)
        session.flush()
    session.commit()


def _delete_committed(session: Session, machine_id: str) -> None:
    for event in session.exec(select(Event).where(Event.machine_id == machine_id)):
        session.delete(event)
    session.flush()
    machine = session.get(Machine, machine_id)
    if machine is not None:
        session.delete(machine)
    session.commit()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MachineOut)
async def create_machine(
    body: MachineCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> Machine:
    machine = Machine(
        id=f"vast_{secrets.token_hex(6)}",
        owner_id=user.id,
        status=MachineState.STARTING.value,
        **body.model_dump(),
    )
    created = Event(
        machine_id=machine.id,
        owner_id=user.id,
        event_type="created",
        state=MachineState.STARTING.value,
        data=body.model_dump(exclude_none=True),
    )
    # The rows are committed first, in a short transaction, then the workflow is started; if
    # Temporal refuses, the rows are deleted again, so nothing is left. Never the other way
    # round: a workflow without its row would rent an instance its owner cannot see. No
    # connection is held while Temporal answers (SQLite has one writer; the pool is bounded).
    await run_in_threadpool(_insert_committed, session, machine, created)
    try:
        await start_machine_workflow(temporal, settings.task_queue, machine)
    except BaseException:
        await run_in_threadpool(_delete_committed, session, machine.id)
        # An ambiguous failure (a timeout) may still have started it: make sure it is gone.
        with contextlib.suppress(Exception):
            await temporal.get_workflow_handle(machine_workflow_id(machine.id)).terminate(
                reason="the machine's creation was rolled back"
            )
        raise
    log.info("machine %s created for %s", machine.id, user.id)
    return machine


def machines_out(session: Session, settings: Settings, machines: list[Machine]) -> list[MachineOut]:
    """The machines as the API shows them, with what hibernation saved on each."""
    if not machines:
        return []
    savings = savings_of(session, settings, machines[0].owner_id, machines)
    return [
        MachineOut.model_validate(m).model_copy(
            update={"savings_usd": round(savings[m.id].net_usd, 6)}
        )
        for m in machines
    ]


@router.get("", response_model=list[MachineOut])
def list_machines(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    status_filter: Annotated[MachineState | None, Query(alias="status")] = None,
) -> list[MachineOut]:
    query = select(Machine).where(Machine.owner_id == user.id)
    if status_filter is not None:
        query = query.where(Machine.status == status_filter.value)
    machines = list(session.exec(query.order_by(col(Machine.created_at).desc())))
    return machines_out(session, settings, machines)


@router.get("/{machine_id}", response_model=MachineOut)
def get_machine(machine: OwnedMachine, session: SessionDep, settings: SettingsDep) -> MachineOut:
    return machines_out(session, settings, [machine])[0]


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
    action: Action,
    machine: Machine,
    session: SessionDep,
    settings: Settings,
    temporal: TemporalDep,
    response: Response,
    wait: bool,
    reason: str | None,
) -> MachineOut | ActionAccepted:
    if machine.status == MachineState.DESTROYED:
        raise HTTPException(status.HTTP_409_CONFLICT, "machine is destroyed")
    if not wait:
        await send_action(temporal, machine.id, action, reason)
        url = f"{router.prefix}/{machine.id}"
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = url
        return ActionAccepted(machine_id=machine.id, action=action, status_url=url)
    # An action may take minutes: give the connection back to the pool while it runs. A
    # commit (of nothing) rather than a rollback, which would expire `machine` and make the
    # next attribute read a blocking query on the event loop.
    await run_in_threadpool(session.commit)
    result: ActionResult = await run_action(temporal, machine.id, action, reason)
    # Activities updated the projection while the action ran.
    await run_in_threadpool(session.refresh, machine)
    [shown] = await run_in_threadpool(machines_out, session, settings, [machine])
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
    temporal: TemporalDep,
    response: Response,
    wait: Wait = True,
    reason: Reason = None,
) -> MachineOut | ActionAccepted:
    """Stop the instance; the disk stays on the host and GPU billing stops."""
    return await _act("stop", machine, session, settings, temporal, response, wait, reason)


@router.post("/{machine_id}/start", responses=_ACTION_RESPONSES)
async def start_machine(
    machine: OwnedMachine,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    response: Response,
    wait: Wait = True,
    reason: Reason = None,
) -> MachineOut | ActionAccepted:
    """Start a stopped machine on its host."""
    return await _act("start", machine, session, settings, temporal, response, wait, reason)


@router.post("/{machine_id}/restart", responses=_ACTION_RESPONSES)
async def restart_machine(
    machine: OwnedMachine,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    response: Response,
    wait: Wait = True,
    reason: Reason = None,
) -> MachineOut | ActionAccepted:
    """Reboot the instance."""
    return await _act("restart", machine, session, settings, temporal, response, wait, reason)


@router.delete("/{machine_id}", responses=_ACTION_RESPONSES)
async def destroy_machine(
    machine: OwnedMachine,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    response: Response,
    wait: Wait = True,
    reason: Reason = None,
) -> MachineOut | ActionAccepted:
    """Destroy the instance and end the machine; its record and events are kept, its wake/sleep
    schedules removed."""
    result = await _act("destroy", machine, session, settings, temporal, response, wait, reason)
    try:
        await delete_machine_schedules(temporal, machine.id)
    except RPCError as exc:  # the destroy stands; a leftover trigger only finds it destroyed
        log.warning("could not remove the schedules of %s: %s", machine.id, exc)
    return result
