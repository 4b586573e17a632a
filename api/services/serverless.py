"""Serverless mode: turn it on and off (the machine's workflow first, then the gateway's row),
rotate the endpoint key, pause and resume through the mode, and the status every route answers
with (`api.services.serverless_status`)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.deps import MachineAction
from api.errors import invalid
from api.schemas.common import ActionAccepted
from api.schemas.serverless import ServerlessEnable, ServerlessEnabled, ServerlessStatusOut
from api.services import quota
from api.services.serverless_status import status_of
from core.contracts.serverless import ServerlessInput
from core.contracts.service import split_port
from core.contracts.states import MachineState
from core.models import Machine
from core.serverless.keys import hash_endpoint_key, key_prefix, new_endpoint_key
from core.serverless.table import ServerlessEndpoint
from core.settings import Settings
from workflows.client import LifecycleAction, MachineClient

SERVERLESS_PATH = "/api/v1/serverless"
_CONFIG_FIELDS = (
    "idle_timeout_minutes",
    "keep_alive_paths",
    "readiness_path",
    "max_pending_requests",
    "resume_timeout_seconds",
    "public",
    "via_ssh",
)


def status_url(machine_id: str) -> str:
    return f"{SERVERLESS_PATH}/status/{machine_id}"


def owned_live_machine(session: Session, owner_id: str, machine_id: str) -> Machine:
    """The caller's machine named in a body, as `api.deps` finds one named in a path: someone
    else's answers like a missing one, a destroyed one is a 409. Its connection goes back to
    the pool (a commit of nothing) before the caller waits on Temporal."""
    machine = session.get(Machine, machine_id)
    if machine is None or machine.owner_id != owner_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"machine {machine_id} not found")
    if machine.status == MachineState.DESTROYED:
        raise HTTPException(status.HTTP_409_CONFLICT, "machine is destroyed")
    session.commit()
    return machine


def check_idle_timeout(settings: Settings, minutes: float) -> None:
    """The floor is a setting (the seed's 5 minutes; tests lower it); the ceiling is the
    model's."""
    floor = settings.serverless_min_idle_minutes
    if minutes < floor:
        raise invalid(
            ("body", "idle_timeout_minutes"), f"Input should be greater than or equal to {floor:g}"
        )


def service_port(machine: Machine, asked: str | None) -> str:
    """The declared TCP port the gateway forwards to: the one asked for, or the machine's only
    one; a 422 naming `port` otherwise."""
    declared = [p for p in machine.declared_ports or [] if split_port(p)[1] == "tcp"]
    if asked is not None:
        if asked in declared:
            return asked
        shown = ", ".join(declared) or "none"
        why = f"the machine does not declare {asked} (its TCP ports: {shown})"
        raise invalid(("body", "port"), why)
    if len(declared) == 1:
        return declared[0]
    why = (
        "the machine declares no TCP port: create it with one (`ports`)"
        if not declared
        else f"the machine declares several TCP ports ({', '.join(declared)}): say which"
    )
    raise invalid(("body", "port"), why)


def _upsert(
    session: Session, machine: Machine, body: ServerlessEnable, port: str
) -> tuple[ServerlessEndpoint, str | None]:
    """The endpoint row with the body's configuration; a key only for a new row (re-enabling
    keeps the key). Two first enables at once: the second finds the first's row."""
    now = datetime.now(UTC)
    config = {name: getattr(body, name) for name in _CONFIG_FIELDS} | {"port": port}
    row = session.get(ServerlessEndpoint, machine.id)
    if row is None:
        key = new_endpoint_key()
        row = ServerlessEndpoint(
            machine_id=machine.id,
            owner_id=machine.owner_id,
            key_hash=hash_endpoint_key(key),
            key_prefix=key_prefix(key),
            enabled_at=now,
            updated_at=now,
            **config,
        )
        session.add(row)
        try:
            session.commit()
            return row, key
        except IntegrityError:
            session.rollback()
            row = session.get(ServerlessEndpoint, machine.id)
            if row is None:  # not a concurrent enable
                raise
    if not row.enabled:  # figures count from the latest enable
        row.enabled_at = now
    for name, value in config.items():
        setattr(row, name, value)
    row.enabled = True
    row.updated_at = now
    session.commit()
    return row, None


async def enable(
    *,
    session: Session,
    settings: Settings,
    machines: MachineClient,
    owner_id: str,
    base_url: str,
    body: ServerlessEnable,
) -> ServerlessEnabled:
    check_idle_timeout(settings, body.idle_timeout_minutes)
    machine = await run_in_threadpool(owned_live_machine, session, owner_id, body.instance_id)
    asked = body.port if isinstance(body.port, str) else None  # the model normalised it
    port = service_port(machine, asked)
    # The workflow first: it refuses an ending machine, and a row it never heard of would make
    # the gateway hold requests for a machine that never pauses.
    seconds = max(1, round(body.idle_timeout_minutes * 60))
    await machines.serverless_mode(
        machine.id, ServerlessInput(enabled=True, idle_timeout_seconds=seconds)
    )
    row, key = await run_in_threadpool(_upsert, session, machine, body, port)
    shown = await run_in_threadpool(status_of, session, settings, base_url, machine, row)
    return ServerlessEnabled(**shown.model_dump(), endpoint_key=key)


def _endpoint(session: Session, machine_id: str) -> ServerlessEndpoint | None:
    return session.get(ServerlessEndpoint, machine_id)


def _enabled_endpoint(session: Session, machine: Machine) -> ServerlessEndpoint:
    row = _endpoint(session, machine.id)
    if row is None or not row.enabled:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"serverless mode is off for {machine.id}: enable it first"
            f" (POST {SERVERLESS_PATH}/enable)",
        )
    session.commit()  # the connection back to the pool before Temporal answers
    return row


def _disabled(session: Session, row: ServerlessEndpoint) -> None:
    row.enabled = False
    row.updated_at = datetime.now(UTC)  # where the figures stop counting
    session.add(row)
    session.commit()


async def disable(
    *,
    session: Session,
    settings: Settings,
    machines: MachineClient,
    owner_id: str,
    base_url: str,
    machine_id: str,
) -> ServerlessStatusOut:
    """The workflow first (idle machines hibernate again), then the row: the gateway stops
    taking requests for it. The key is kept for a later enable."""
    machine = await run_in_threadpool(owned_live_machine, session, owner_id, machine_id)
    row = await run_in_threadpool(_enabled_endpoint, session, machine)
    seconds = max(1, round(row.idle_timeout_minutes * 60))
    await machines.serverless_mode(
        machine.id, ServerlessInput(enabled=False, idle_timeout_seconds=seconds)
    )
    await run_in_threadpool(_disabled, session, row)
    return await run_in_threadpool(status_of, session, settings, base_url, machine, row)


def current_status(
    session: Session, settings: Settings, base_url: str, machine: Machine
) -> ServerlessStatusOut:
    return status_of(session, settings, base_url, machine, _endpoint(session, machine.id))


async def act(
    action: MachineAction, name: LifecycleAction, reason: str | None, base_url: str
) -> ServerlessStatusOut | ActionAccepted:
    """Pause or resume a machine in serverless mode, as `POST /api/v1/machines/{id}/pause` does;
    the status once done, or 202 when not waiting."""
    machine = action.machine
    row = await run_in_threadpool(_enabled_endpoint, action.session, machine)
    if name == "resume":
        limit = action.settings.max_machines_per_owner
        await run_in_threadpool(quota.check_wake, action.session, machine, limit)
    if not action.wait:
        await action.machines.act(machine.id, name, reason=reason, wait=False)
        return action.accepted(name, status_url(machine.id))
    result = await action.machines.act(machine.id, name, reason=reason, wait=True)
    await run_in_threadpool(action.session.refresh, machine)  # activities moved the projection
    shown = await run_in_threadpool(
        status_of, action.session, action.settings, base_url, machine, row
    )
    return shown.model_copy(update={"state": result.state})


def rotate_key(session: Session, machine: Machine) -> tuple[ServerlessEndpoint, str]:
    """A new endpoint key, shown once; the old one stops working."""
    row = _endpoint(session, machine.id)
    if row is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{machine.id} has no endpoint key: enable serverless mode first"
            f" (POST {SERVERLESS_PATH}/enable)",
        )
    key = new_endpoint_key()
    # One UPDATE: from its commit, the gateway's check against the old hash fails.
    row.key_hash, row.key_prefix = hash_endpoint_key(key), key_prefix(key)
    session.add(row)
    session.commit()
    return row, key
