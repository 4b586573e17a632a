"""The seed's `/api/instances/{id}/...` routes, in the seed's JSON shapes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import col, select

from api.deps import (
    ActionContext,
    LiveMachine,
    MachineClientDep,
    OwnedMachine,
    SessionDep,
    SettingsDep,
)
from api.ingest.service import Ingest
from api.schemas.common import ACTION_RESPONSES, COMMON_RESPONSES, CONFLICT, ActionAccepted
from api.schemas.seed import (
    AutoHibernationOut,
    ConfigOut,
    ConfigUpdate,
    HibernateOut,
    HibernateRequest,
    InstanceEventOut,
    InstanceEventsOut,
    InstanceStatusOut,
    PauseOut,
    PreHibernateOut,
    SavingsOut,
    VastInfoOut,
    WakeOut,
    WakeRequest,
)
from api.services import quota
from api.services.savings import savings_of
from core.contracts.hibernation import ConfigureInput, HibernateInput, HibernationConfig, WakeInput
from core.metrics.liveness import is_offline
from core.models import Event, Machine

router = APIRouter(
    prefix="/api/instances",
    tags=["instances"],
    responses=COMMON_RESPONSES,
)


def _provider_instance_id(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _region(machine: Machine) -> str | None:
    """The region asked for, else the country of where it runs (`"Texas, US"` → `US`)."""
    if machine.region:
        return machine.region
    if machine.geolocation:
        country = machine.geolocation.rsplit(",", 1)[-1].strip()
        return country or None
    return None


def _status_url(machine_id: str) -> str:
    return f"{router.prefix}/{machine_id}/status"


def _config_out(machine_id: str, config: HibernationConfig) -> ConfigOut:
    return ConfigOut(
        instance_id=machine_id,
        auto_hibernation=AutoHibernationOut(
            enabled=config.enabled,
            pause_after_minutes=config.pause_after_minutes,
            delete_after_minutes=config.delete_after_minutes,
            gpu_usage_threshold=config.gpu_usage_threshold,
        ),
        pre_hibernate=PreHibernateOut(
            command=config.pre_hibernate_command,
            timeout_seconds=config.pre_hibernate_timeout_seconds,
            on_failure=config.pre_hibernate_on_failure,
        ),
        pause=PauseOut(hibernate_after_minutes=config.hibernate_paused_after_minutes),
    )


def _config_of(machine: Machine) -> HibernationConfig:
    return HibernationConfig(
        enabled=machine.auto_hibernation_enabled,
        gpu_usage_threshold=machine.gpu_usage_threshold,
        pause_after_minutes=machine.pause_after_minutes,
        delete_after_minutes=machine.delete_after_minutes,
        pre_hibernate_command=machine.pre_hibernate_command,
        pre_hibernate_timeout_seconds=machine.pre_hibernate_timeout_seconds,
        pre_hibernate_on_failure=machine.pre_hibernate_on_failure,
        hibernate_paused_after_minutes=machine.hibernate_paused_after_minutes,
    )


@router.get("/{machine_id}/status", response_model=InstanceStatusOut)
def instance_status(
    machine: OwnedMachine, request: Request, session: SessionDep, settings: SettingsDep
) -> InstanceStatusOut:
    ingest: Ingest = request.app.state.ingest
    status = "offline" if is_offline(machine, ingest.now()) else machine.status
    savings = savings_of(session, settings, machine.owner_id, [machine])[machine.id]
    return InstanceStatusOut(
        instance_id=machine.id,
        status=status,
        gpu_utilization=machine.gpu_utilization,
        last_activity=machine.last_activity,
        auto_hibernation=AutoHibernationOut(
            enabled=machine.auto_hibernation_enabled,
            pause_after_minutes=machine.pause_after_minutes,
            delete_after_minutes=machine.delete_after_minutes,
            gpu_usage_threshold=machine.gpu_usage_threshold,
        ),
        vast_info=VastInfoOut(
            instance_id=_provider_instance_id(machine.instance_id),
            gpu_type=machine.gpu_name,
            region=_region(machine),
        ),
        idle_since=machine.idle_since,
        snapshot_id=machine.snapshot_id,
        savings=SavingsOut.of(savings),
    )


@router.get("/{machine_id}/config", response_model=ConfigOut)
def get_config(machine: OwnedMachine) -> ConfigOut:
    """The machine's auto-hibernation settings and pre-hibernate hook."""
    return _config_out(machine.id, _config_of(machine))


@router.put("/{machine_id}/config", response_model=ConfigOut, responses=CONFLICT)
async def put_config(
    body: ConfigUpdate, machine: LiveMachine, machines: MachineClientDep
) -> ConfigOut:
    """Change the fields given; the machine applies them at once (an idle machine's deadline
    moves with `pause_after_minutes`)."""
    result = await machines.configure(
        machine.id,
        ConfigureInput(
            enabled=body.auto_hibernation_enabled,
            gpu_usage_threshold=body.gpu_usage_threshold,
            pause_after_minutes=body.pause_after_minutes,
            delete_after_minutes=body.delete_after_minutes,
            pre_hibernate_command=body.pre_hibernate_command,
            pre_hibernate_timeout_seconds=body.pre_hibernate_timeout_seconds,
            pre_hibernate_on_failure=body.pre_hibernate_on_failure,
            hibernate_paused_after_minutes=body.hibernate_paused_after_minutes,
            clear_pre_hibernate_command=body.clears_command,
        ),
    )
    return _config_out(machine.id, result.config)


@router.post("/{machine_id}/hibernate", responses=ACTION_RESPONSES)
async def hibernate(
    action: ActionContext, body: Annotated[HibernateRequest | None, Body()] = None
) -> HibernateOut | ActionAccepted:
    """Snapshot the workspace to object storage, verify it, then destroy the instance."""
    machine_id, request = action.machine.id, HibernateInput(reason=body.reason if body else None)
    result = await action.machines.hibernate(machine_id, request, wait=action.wait)
    if result is None:
        return action.accepted("hibernate", _status_url(machine_id))
    return HibernateOut(
        snapshot_id=result.snapshot_id, instance_destroyed=result.instance_destroyed
    )


@router.post("/{machine_id}/wake", responses=ACTION_RESPONSES)
async def wake(
    action: ActionContext, body: Annotated[WakeRequest | None, Body()] = None
) -> WakeOut | ActionAccepted:
    """Rent a matching offer (any host), restore the snapshot onto it, and run again."""
    machine_id, wanted = action.machine.id, body or WakeRequest()
    limit = action.settings.max_machines_per_owner
    await run_in_threadpool(quota.check_wake, action.session, action.machine, limit)
    request = WakeInput(gpu_type=wanted.gpu_type, region=wanted.region, max_price=wanted.max_price)
    result = await action.machines.wake(machine_id, request, wait=action.wait)
    if result is None:
        return action.accepted("wake", _status_url(machine_id))
    provider_id = result.instance.instance_id
    return WakeOut(
        instance_id=machine_id,
        vast_instance_id=int(provider_id) if provider_id.isdigit() else provider_id,
        ssh_host=result.instance.ssh_host,
        ssh_port=result.instance.ssh_port,
        ssh_user=result.instance.ssh_user,
        time_taken=round(result.seconds, 3),
    )


@router.get("/{machine_id}/events", response_model=InstanceEventsOut)
def instance_events(
    machine: OwnedMachine,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 10,
) -> InstanceEventsOut:
    """The machine's latest events, newest first."""
    rows = session.exec(
        select(Event)
        .where(Event.machine_id == machine.id)
        .order_by(col(Event.timestamp).desc(), col(Event.id).desc())
        .limit(limit)
    )
    return InstanceEventsOut(
        events=[
            InstanceEventOut(
                event_type=event.event_type,
                timestamp=event.timestamp,
                gpu_utilization=event.data.get("gpu_utilization"),
                snapshot_id=event.data.get("snapshot_id"),
                reason=event.reason,
            )
            for event in rows
        ]
    )
