"""Machines: create one (rows, then its workflow, rolled back together), list them with what
hibernation saved, and run a lifecycle action."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, replace
from typing import Any

from fastapi import HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session, SQLModel, col, select

from api.deps import MachineAction
from api.pagination import Pager, newest_first
from api.schemas.common import ActionAccepted
from api.schemas.machines import MachineCreate, MachineOut, MachineSavingsOut
from api.services.quota import check_quota
from api.services.savings import billing_of
from api.services.standby import for_new_machine, summaries
from core.contracts.events import EventType
from core.contracts.machine import MachineKind, MachineSpec
from core.contracts.providers import ProviderFeature
from core.contracts.states import MachineState
from core.machine_ids import new_machine_id
from core.models import Event, Machine, ServerlessEndpoint
from core.settings import Settings
from providers.registry import declared_unsupported
from workflows.client import LifecycleAction, MachineClient, MachineExists

log = logging.getLogger(__name__)

MACHINES_PATH = "/api/v1/machines"


def machine_url(machine_id: str) -> str:
    return f"{MACHINES_PATH}/{machine_id}"


def spec_of(machine: Machine) -> MachineSpec:
    return MachineSpec(
        kind=MachineKind(machine.kind),
        gpu_name=machine.gpu_name,
        image=machine.image,
        disk_gb=machine.disk_gb,
        num_gpus=machine.num_gpus,
        region=machine.region,
        max_price=machine.max_price,
        min_reliability=machine.min_reliability,
        min_vram_gb=machine.min_vram_gb,
        provider=machine.provider,
        machine_type=machine.machine_type,
        zone=machine.zone,
        spot=machine.spot,
        interruptible=machine.interruptible,
        bid_price=machine.bid_price,
        ports=list(machine.declared_ports or []),
        on_start=machine.on_start,
    )


def unsupported_kind_reason(provider: str, kind: MachineKind) -> str | None:
    """Why `provider` cannot run a machine of this kind (its own words); None when it can."""
    feature = (
        ProviderFeature.CPU_MACHINES if kind is MachineKind.CPU else ProviderFeature.GPU_MACHINES
    )
    return declared_unsupported(provider, feature)


def _insert_committed(session: Session, quota: int, owner_id: str, *rows: SQLModel) -> None:
    # Counted in the transaction that inserts, the owner's row locked: concurrent creates
    # cannot all pass the last free place.
    check_quota(session, owner_id, quota, lock=True)
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


async def create_machine(
    *,
    session: Session,
    machines: MachineClient,
    task_queue: str,
    quota: int,
    owner_id: str,
    body: MachineCreate,
) -> Machine:
    unsupported = unsupported_kind_reason(body.provider, body.kind)
    if unsupported is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, unsupported)
    standby = await run_in_threadpool(for_new_machine, session, owner_id, body.kind, body.standby)
    # The service's env values go to the workflow only: the row and the event keep the names.
    asked = body.model_dump(mode="json", exclude={"ports", "env", "standby"})
    service: dict[str, Any] = {
        "declared_ports": [str(port) for port in body.ports] or None,
        "env_names": list(body.env) or None,
    }
    machine = Machine(
        id=new_machine_id(),
        owner_id=owner_id,
        status=MachineState.STARTING.value,
        **{**asked, **service, "num_gpus": body.num_gpus or 0},
    )
    created = Event(
        machine_id=machine.id,
        owner_id=owner_id,
        event_type=EventType.CREATED.value,
        state=MachineState.STARTING.value,
        data={
            k: v
            for k, v in {**asked, **service, "standby": standby and asdict(standby)}.items()
            if v is not None
        },
    )
    spec = replace(spec_of(machine), env=dict(body.env))
    # The rows are committed first, in a short transaction, then the workflow is started; if
    # Temporal refuses, the rows are deleted again, so nothing is left. Never the other way
    # round: a workflow without its row would rent an instance its owner cannot see. No
    # connection is held while Temporal answers (SQLite has one writer; the pool is bounded).
    await run_in_threadpool(_insert_committed, session, quota, owner_id, machine, created)
    try:
        await machines.start(
            machine_id=machine.id,
            owner_id=owner_id,
            spec=spec,
            task_queue=task_queue,
            standby=standby,
        )
    except MachineExists:
        # Another machine's workflow has this id (ids are never reused): ours never started,
        # and that one is not ours to terminate.
        await run_in_threadpool(_delete_committed, session, machine.id)
        raise
    except BaseException:
        await run_in_threadpool(_delete_committed, session, machine.id)
        # An ambiguous failure (a timeout) may still have started it: make sure it is gone.
        with contextlib.suppress(Exception):
            await machines.terminate(machine.id, reason="the machine's creation was rolled back")
        raise
    log.info("machine %s created for %s", machine.id, owner_id)
    return machine


def serverless_machine_ids(session: Session, machine_ids: list[str]) -> set[str]:
    """Those of the machines in serverless mode."""
    query = select(ServerlessEndpoint.machine_id).where(
        col(ServerlessEndpoint.machine_id).in_(machine_ids), col(ServerlessEndpoint.enabled)
    )
    return set(session.exec(query))


def machines_out(session: Session, settings: Settings, machines: list[Machine]) -> list[MachineOut]:
    """The machines as the API shows them, with what hibernation saved on each and their
    standbys."""
    if not machines:
        return []
    billing = billing_of(session, settings, machines[0].owner_id, machines)
    serverless = serverless_machine_ids(session, [m.id for m in machines])
    standbys = summaries(session, machines)
    return [
        MachineOut.model_validate(m).model_copy(
            update={
                "savings_usd": round(billing[m.id][0].net_usd, 6),
                "savings": MachineSavingsOut.of(billing[m.id][0]),
                "cost_per_hour_usd": round(billing[m.id][1].per_hour_usd, 6),
                "cost_usd": round(billing[m.id][1].total_usd, 6),
                "serverless": m.id in serverless,
                "standby": standbys.get(m.id),
            }
        )
        for m in machines
    ]


def list_machines(
    *,
    session: Session,
    settings: Settings,
    owner_id: str,
    status: MachineState | None,
    page: Pager,
) -> list[MachineOut]:
    query = select(Machine).where(Machine.owner_id == owner_id)
    if status is not None:
        query = query.where(Machine.status == status.value)
    machines = page.rows(session, query, newest_first(Machine.created_at, Machine.id))
    return machines_out(session, settings, machines)


async def act(
    action: MachineAction, name: LifecycleAction, reason: str | None
) -> MachineOut | ActionAccepted:
    """Stop, start, restart, destroy, pause or resume; the machine as it is after, or 202 when
    not waiting."""
    machine = action.machine
    if not action.wait:
        await action.machines.act(machine.id, name, reason=reason, wait=False)
        return action.accepted(name, machine_url(machine.id))
    result = await action.machines.act(machine.id, name, reason=reason, wait=True)
    # Activities updated the projection while the action ran.
    await run_in_threadpool(action.session.refresh, machine)
    [shown] = await run_in_threadpool(machines_out, action.session, action.settings, [machine])
    # The update's answer is the freshest word on the state, whatever the projection says.
    return shown.model_copy(update={"status": result.state})
