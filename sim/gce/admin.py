"""The GCE part of the sim's admin API, under /sim/admin/gce on the vast port."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sim.gce.catalogue import ZONES, price_per_hour
from sim.gce.errors import not_found
from sim.gce.faults import QuotaFault, QuotaMode, Stockout, StockoutCode, StormKind
from sim.gce.instances import GceCloud
from sim.gce.store import InstanceRecord
from sim.gce.views import operation_json


class StockoutIn(BaseModel):
    # None: every insert/start in the zone fails until cleared.
    count: int | None = Field(None, ge=1)
    code: StockoutCode = "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"


class QuotaIn(BaseModel):
    count: int = Field(1, ge=1)
    mode: QuotaMode = "sync"
    zone: str | None = None
    metric: str = "CPUS"
    limit: float = 24.0


class StormIn(BaseModel):
    kind: StormKind = "429"
    count: int = Field(1, ge=1)
    method: str | None = None
    path_prefix: str | None = None


class CountIn(BaseModel):
    count: int = Field(1, ge=0)


def gce_admin_router(cloud: GceCloud) -> APIRouter:
    """Included in the admin router, so it shares its X-Admin-Token check."""
    router = APIRouter(prefix="/gce")

    def view(record: InstanceRecord) -> dict[str, Any]:
        layout = cloud.machines.layout(record.id)
        return {
            "project": record.project,
            "zone": record.zone,
            "name": record.name,
            "id": str(record.id),
            "status": record.status,
            "natIP": record.address if record.external else None,
            "address": record.address,
            "ssh_port": cloud.ssh_port,
            "machine_type": record.machine_type,
            "spot": record.spot,
            "price_per_hour": price_per_hour(record.zone, record.machine_type, record.spot),
            "machine_dir": str(layout.root),
            "workspace_path": str(layout.workspace),
            "visible_workspace": layout.visible_workspace,
            "home_path": str(cloud.machines.home_root(record.id)),
            "pids": cloud.machines.pids(record.id),
        }

    @router.get("/status")
    async def status() -> dict[str, Any]:
        return {
            "instances": len(cloud.state.instances),
            "operations": len(cloud.state.operations),
            "ssh_port": cloud.ssh_port,
            "boot_delay": cloud.boot_delay(),
            **cloud.faults.as_dict(),
        }

    @router.get("/instances")
    async def instances() -> list[dict[str, Any]]:
        return [view(record) for record in cloud.state.instances.values()]

    @router.get("/projects/{project}/zones/{zone}/instances/{name}")
    async def instance(project: str, zone: str, name: str) -> dict[str, Any]:
        return view(cloud.get(project, zone, name))

    @router.post("/projects/{project}/zones/{zone}/instances/{name}/preempt")
    async def preempt(project: str, zone: str, name: str) -> dict[str, Any]:
        return operation_json(await cloud.preempt(project, zone, name))

    @router.post("/zones/{zone}/stockout")
    async def stockout(zone: str, body: StockoutIn) -> dict[str, Any]:
        if zone not in ZONES:
            raise not_found(f"zones/{zone}")
        cloud.faults.stockouts[zone] = Stockout(zone, body.count, body.code)
        return cloud.faults.as_dict()

    @router.delete("/zones/{zone}/stockout")
    async def clear_stockout(zone: str) -> dict[str, Any]:
        cloud.faults.stockouts.pop(zone, None)
        return cloud.faults.as_dict()

    @router.post("/quota")
    async def quota(body: QuotaIn) -> dict[str, Any]:
        cloud.faults.quotas.append(
            QuotaFault(body.count, body.mode, body.zone, body.metric, body.limit)
        )
        return cloud.faults.as_dict()

    @router.post("/storms")
    async def storm(body: StormIn) -> dict[str, Any]:
        cloud.faults.add_storm(body.kind, body.count, body.method, body.path_prefix)
        return cloud.faults.as_dict()

    @router.post("/hang-next-insert")
    async def hang(body: CountIn) -> dict[str, Any]:
        cloud.faults.hanging_inserts = body.count
        return cloud.faults.as_dict()

    @router.delete("/faults")
    async def clear() -> dict[str, Any]:
        cloud.faults.clear()
        return cloud.faults.as_dict()

    return router
