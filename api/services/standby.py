"""The standby: a machine's config merged from a partial body and checked with the workflow's
own rule, sent to its workflow (`configure_standby`, `migrate`), and shown from the workflow's
answer or the `machine_standby` projection with the agent's newest sync figures; an owner's
defaults; the standby a new machine gets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session, col, select

from api.deps import MachineAction
from api.errors import invalid
from api.schemas.common import ActionAccepted
from api.schemas.machines import MachineOut
from api.schemas.standby import (
    AgentSyncOut,
    StandbyConfigOut,
    StandbyConfigUpdate,
    StandbyFields,
    StandbyInstanceOut,
    StandbyOut,
    StandbySettingsOut,
    StandbySettingsUpdate,
    StandbySshOut,
    StandbySummary,
)
from core.contracts.machine import MachineKind
from core.contracts.standby import (
    DEFAULT_STANDBY_MACHINE_TYPE,
    MigrateInput,
    Side,
    StandbyConfig,
    StandbyConfigInput,
    StandbyStatus,
)
from core.contracts.standby import standby_config_problem as config_problem
from core.contracts.states import MachineState
from core.models import Machine
from core.standby.projection import (
    disabled,
    owner_defaults,
    save_owner_defaults,
    status_of,
)
from core.standby.table import MachineStandby, StandbySettings
from workflows.client import MachineClient

SETTINGS_PATH = "/api/v1/settings/standby"
NO_GPU = "a cpu machine has no standby: a standby keeps a GPU machine's workspace"

# --- the agent's sync figures -----------------------------------------------------------


def agent_sync(machine: Machine) -> AgentSyncOut | None:
    """The newest sync figures the machine's agent reported (the heartbeat ingest keeps them
    on the machine's row); None before the first."""
    if machine.sync_last_success_at is None and machine.sync_failures is None:
        return None
    return AgentSyncOut(
        last_success_at=machine.sync_last_success_at,
        seconds=machine.sync_seconds,
        bytes_sent=machine.sync_bytes,
        consecutive_failures=machine.sync_failures,
        error=machine.sync_error,
    )


# --- answers ----------------------------------------------------------------------------


def _newest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def _summary_fields(
    standby: StandbyStatus, sync: AgentSyncOut | None, now: datetime
) -> dict[str, Any]:
    instance = standby.instance
    shown = None
    ssh = None
    if instance is not None:
        shown = StandbyInstanceOut(
            instance_id=instance.instance_id,
            provider=instance.provider,
            zone=instance.provider_data.get("zone"),
            machine_type=instance.provider_data.get("machine_type"),
            price_per_hour=instance.price_per_hour,
        )
        if instance.ssh_host and instance.ssh_port:
            ssh = f"ssh -p {instance.ssh_port} {instance.ssh_user}@{instance.ssh_host}"
    last = _newest(standby.last_sync_at, sync.last_success_at if sync else None)
    lag = None if last is None else round(max((now - last).total_seconds(), 0.0), 3)
    return {
        "enabled": standby.config.enabled,
        "side": standby.side,
        "reason": standby.reason,
        "instance": shown,
        "ssh": ssh,
        "health": standby.health,
        "last_sync_at": last,
        "lag_seconds": lag,
        "problem": standby.problem,
    }


def standby_out(
    machine_id: str,
    state: MachineState,
    standby: StandbyStatus,
    sync: AgentSyncOut | None,
    now: datetime | None = None,
) -> StandbyOut:
    fields = _summary_fields(standby, sync, now or datetime.now(UTC))
    instance = standby.instance
    login = None
    if instance is not None and instance.ssh_host and instance.ssh_port:
        login = StandbySshOut(
            host=instance.ssh_host,
            port=instance.ssh_port,
            user=instance.ssh_user,
            command=fields["ssh"],
        )
    config = StandbyConfigOut.model_validate(standby.config, from_attributes=True)
    return StandbyOut(
        **fields,
        machine_id=machine_id,
        state=state,
        config=config,
        ssh_login=login,
        sync_error=standby.sync_error,
        moved_at=standby.moved_at,
        agent_sync=sync,
    )


def standby_of(session: Session, machine: Machine) -> StandbyStatus:
    """The machine's standby as projected; a machine that never had one shows its owner's
    defaults, disabled (the base a partial PUT changes)."""
    row = session.get(MachineStandby, machine.id)
    if row is not None:
        return status_of(row)
    _, defaults = owner_defaults(session, machine.owner_id)
    return StandbyStatus(config=disabled(defaults))


def current(session: Session, machine: Machine) -> StandbyOut:
    standby = standby_of(session, machine)
    return standby_out(machine.id, MachineState(machine.status), standby, agent_sync(machine))


def summaries(session: Session, machines: list[Machine]) -> dict[str, StandbySummary]:
    """The machines' standbys for their answers: none for a machine that has none."""
    query = select(MachineStandby).where(
        col(MachineStandby.machine_id).in_([m.id for m in machines])
    )
    rows = {row.machine_id: row for row in session.exec(query)}
    now = datetime.now(UTC)
    shown: dict[str, StandbySummary] = {}
    for machine in machines:
        row = rows.get(machine.id)
        if row is None or (not row.enabled and row.instance_id is None):
            continue
        fields = _summary_fields(status_of(row), agent_sync(machine), now)
        shown[machine.id] = StandbySummary(**fields)
    return shown


# --- config -----------------------------------------------------------------------------


def merged(base: StandbyConfig, body: StandbyFields, loc: tuple[str, ...]) -> StandbyConfig:
    """`base` with the body's fields; a 422 at `loc + (field,)` in the contract's words. A
    change of provider to gcp brings its default machine type back, unless given."""
    given = body.model_dump(exclude_unset=True, exclude={"auto_standby"})
    provider = given.get("provider", base.provider)
    if provider != base.provider and provider == "gcp":
        given = {"machine_type": DEFAULT_STANDBY_MACHINE_TYPE, "zone": None} | given
    config = replace(base, **given)
    problem = config_problem(config)
    if problem is not None:
        field, why = problem
        raise invalid((*loc, field), why)
    return config


def settings_out(session: Session, owner_id: str) -> StandbySettingsOut:
    auto, defaults = owner_defaults(session, owner_id)
    row = session.get(StandbySettings, owner_id)
    values = {k: v for k, v in vars(defaults).items() if k != "enabled"}
    return StandbySettingsOut(
        **values, auto_standby=auto, updated_at=row.updated_at if row else None
    )


def put_settings(
    session: Session, owner_id: str, body: StandbySettingsUpdate
) -> StandbySettingsOut:
    auto, defaults = owner_defaults(session, owner_id)
    config = merged(defaults, body, ("body",))  # raises before anything is written
    if body.auto_standby is not None:
        auto = body.auto_standby
    save_owner_defaults(session, owner_id, auto, config)
    session.commit()
    return settings_out(session, owner_id)


def for_new_machine(
    session: Session, owner_id: str, kind: MachineKind, block: StandbyConfigUpdate | None
) -> StandbyConfig | None:
    """A new machine's standby: the request's block over the owner's defaults (a block means
    enabled unless it says otherwise), else the defaults when `auto_standby` is on."""
    auto, defaults = owner_defaults(session, owner_id)
    if block is None:
        return defaults if auto and kind is MachineKind.GPU else None
    config = merged(defaults, block, ("body", "standby"))
    if not config.enabled:
        return None
    if kind is MachineKind.CPU:
        raise invalid(("body", "standby"), NO_GPU)
    return config


def _configurable(session: Session, machine: Machine) -> StandbyStatus:
    if machine.kind == MachineKind.CPU.value:
        raise HTTPException(status.HTTP_409_CONFLICT, NO_GPU)
    standby = standby_of(session, machine)
    session.commit()  # the connection back to the pool before Temporal answers
    return standby


async def configure(
    *,
    session: Session,
    machines: MachineClient,
    machine: Machine,
    body: StandbyConfigUpdate | None,
    reason: str | None,
) -> StandbyOut:
    """The body over the machine's config (None: the config, disabled), to its workflow."""
    standby = await run_in_threadpool(_configurable, session, machine)
    if body is None:
        config = disabled(standby.config)
    else:
        config = merged(standby.config, body, ("body",))
        if "enabled" not in body.model_fields_set:
            # A PUT gives the machine a standby; the projection it merged over may be older
            # than the workflow's config (its outbox writes after), so it never says "off".
            config = replace(config, enabled=True)
    view = await machines.configure_standby(
        machine.id, StandbyConfigInput(config=config, reason=reason)
    )
    sync = agent_sync(machine)
    # The workflow's answer is fresher than the projection, which its outbox writes after.
    return standby_out(machine.id, view.state, view.standby, sync)


async def migrate(
    action: MachineAction, to: str, reason: str | None
) -> MachineOut | ActionAccepted:
    """As `POST /api/v1/machines/{id}/stop` does: the machine after, or 202 when not waiting."""
    from api.services.machines import machine_url, machines_out  # machines imports us

    machine = action.machine
    request = MigrateInput(to=Side(to), reason=reason)
    if not action.wait:
        await action.machines.migrate(machine.id, request, wait=False)
        return action.accepted("migrate", machine_url(machine.id))
    result = await action.machines.migrate(machine.id, request, wait=True)
    await run_in_threadpool(action.session.refresh, machine)
    [shown] = await run_in_threadpool(machines_out, action.session, action.settings, [machine])
    return shown.model_copy(update={"status": result.state})
