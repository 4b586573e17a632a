"""Machines as the API creates them: a user, a `Machine` row, then the workflow."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowHandle

from api.services.machines import spec_of
from core.accounts import create_user
from core.contracts.standby import StandbyConfig
from core.contracts.states import MachineState
from core.contracts.workflow import MachineResult, MachineSnapshot
from core.db import session_scope
from core.models import Event, Machine, ProviderInstanceRecord, SshKey
from tests.fixtures.sim import SimHandle
from workflows.client import MachineClient
from workflows.machine import MachineWorkflow

MachineHandle = WorkflowHandle[MachineWorkflow, MachineResult]


async def create_machine(
    client: Client,
    engine: Engine,
    task_queue: str,
    *,
    standby: StandbyConfig | None = None,
    user_key: str | None = None,
) -> MachineHandle:
    """A user (with `user_key` as their SSH key, if given), the machine's row, its workflow."""
    with session_scope(engine) as session:
        user = create_user(session, f"user-{uuid.uuid4().hex[:6]}")
        if user_key is not None:
            session.add(
                SshKey(
                    user_id=user.id,
                    name="laptop",
                    public_key=user_key,
                    fingerprint=uuid.uuid4().hex,
                )
            )
        machine = Machine(
            id=f"m{uuid.uuid4().hex[:10]}",
            owner_id=user.id,
            gpu_name="RTX 4090",
            image="pytorch/pytorch:latest",
            disk_gb=20,
            region="NA",
        )
        session.add(machine)
    return await MachineClient(client).start(
        machine_id=machine.id,
        owner_id=machine.owner_id,
        spec=spec_of(machine),
        task_queue=task_queue,
        standby=standby,
    )


def machine_id(handle: MachineHandle) -> str:
    return handle.id.removeprefix("machine-")


async def until_state(
    handle: MachineHandle, state: MachineState, *, polls: int = 600
) -> MachineSnapshot:
    """Query until the machine is in `state` (the query needs a live worker, so errors while
    one restarts are retried)."""
    snapshot: MachineSnapshot | None = None
    for _ in range(polls):
        try:
            snapshot = await handle.query(MachineWorkflow.state)
        except Exception:  # noqa: BLE001 - no worker yet to answer the query
            snapshot = None
        if snapshot is not None and snapshot.state is state and not snapshot.outbox:
            return snapshot
        if snapshot is not None and snapshot.state is MachineState.ERROR:
            raise AssertionError(f"machine in error: {snapshot.reason}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"machine never became {state}; last seen {snapshot}")


async def live_instances(sim: SimHandle, handle: MachineHandle) -> list[dict[str, object]]:
    prefix = f"dumont-{machine_id(handle)}-"
    return [
        i
        for i in await sim.admin.instances()
        if str(i["label"] or "").startswith(prefix) and i["actual_status"] != "destroyed"
    ]


def recorded_states(engine: Engine, handle: MachineHandle) -> list[str | None]:
    """The states of the machine's state-change events (its agent's events left out)."""
    return [
        e.state for e in recorded_events(engine, handle) if not e.event_type.startswith("agent_")
    ]


def recorded_events(engine: Engine, handle: MachineHandle) -> list[Event]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Event).where(Event.machine_id == machine_id(handle)).order_by(col(Event.id))
            ).all()
        )


async def until_projection(engine: Engine, handle: MachineHandle, status: str) -> Machine:
    """The projection is written just after the workflow changes state: wait for it."""
    for _ in range(300):
        row = projection(engine, handle)
        if row.status == status:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"projection says {row.status!r}, never {status!r}")


def projection(engine: Engine, handle: MachineHandle) -> Machine:
    with Session(engine) as session:
        row = session.get(Machine, machine_id(handle))
    assert row is not None
    return row


def instance_rows(engine: Engine, handle: MachineHandle) -> list[ProviderInstanceRecord]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(ProviderInstanceRecord).where(
                    ProviderInstanceRecord.machine_id == machine_id(handle)
                )
            ).all()
        )
