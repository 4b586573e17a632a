"""The seed's `/api/instances/{id}/...` routes, in the seed's JSON shapes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.ingest.service import Ingest
from api.routes.machines import OwnedMachine
from api.schemas import AutoHibernationOut, ErrorOut, InstanceStatusOut, VastInfoOut
from core.metrics.liveness import is_offline
from core.models import Machine

router = APIRouter(
    prefix="/api/instances",
    tags=["instances"],
    responses={
        401: {"model": ErrorOut, "description": "Missing or invalid token"},
        404: {"model": ErrorOut, "description": "No such machine (or not yours)"},
    },
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


@router.get("/{machine_id}/status", response_model=InstanceStatusOut)
def instance_status(machine: OwnedMachine, request: Request) -> InstanceStatusOut:
    ingest: Ingest = request.app.state.ingest
    status = "offline" if is_offline(machine, ingest.now()) else machine.status
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
    )
