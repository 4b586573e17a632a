"""The sim's own admin API under /sim/admin: fault injection and a look inside the machines.

Authorised by the `X-Admin-Token` header when the sim was started with an admin token.
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field

from sim.errors import VastError
from sim.gce.admin import gce_admin_router
from sim.ratelimit import RateLimiter
from sim.runtime import Sim
from sim.views import instance_json


class FaultIn(BaseModel):
    status: int = Field(429, ge=400, le=599)
    count: int = Field(1, ge=1)
    path_prefix: str | None = None
    method: str | None = None
    body: Literal["text", "json"] = "text"
    retry_after: float | None = Field(None, ge=0)
    message: str | None = None


class SecondsIn(BaseModel):
    seconds: float = Field(ge=0)


class CountIn(BaseModel):
    count: int = Field(1, ge=0)


class RateLimitIn(BaseModel):
    enabled: bool
    scale: float = Field(1.0, gt=0)


class GpuLoadIn(BaseModel):
    utilization: float = Field(ge=0, le=100)
    memory_used_mb: float = Field(0.0, ge=0)


def admin_router(sim: Sim) -> APIRouter:
    def authorise(x_admin_token: str | None = Header(None)) -> None:
        expected = sim.config.admin_token
        if expected is None:
            return
        if x_admin_token is None or not hmac.compare_digest(x_admin_token, expected):
            raise VastError(401, "auth_error", "bad or missing X-Admin-Token")

    router = APIRouter(prefix="/sim/admin", dependencies=[Depends(authorise)])
    machines = sim.machines

    def instance_with_paths(instance_id: int) -> dict[str, Any]:
        record = machines.get(instance_id)
        layout = machines.layout(instance_id)
        view = instance_json(record, time.time())
        view.update(
            machine_dir=str(layout.root),
            workspace_path=str(layout.workspace),
            visible_workspace=layout.visible_workspace,
            home_path=str(layout.home),
            gpu_file=str(layout.gpu_file),
            host_taken=record.host_taken,
            fails_to_boot=record.fails_to_boot,
            ssh_key_ids=[key.id for key in record.ssh_keys],
            netns=record.netns,
            pasta_pid=machines.networks.pasta_pid(record),
        )
        return view

    @router.get("/status")
    async def status() -> dict[str, Any]:
        rented = sim.state.rented_offers()
        return {
            "instances": len(sim.state.instances),
            "offers": len(sim.catalogue),
            "available_offers": len([o for o in sim.catalogue if o not in rented]),
            "boot_delay": machines.boot_delay,
            "latency": sim.faults.latency,
            "faults": [rule.as_dict() for rule in sim.faults.rules],
            "failing_creates": machines.failing_creates,
            "isolation": "namespace" if sim.namespace else "plain",
            # "netns": machines that declare TCP ports get their own network namespace.
            "network": sim.networks.mode,
            "rate_limit": sim.limiter is not None,
            "seed": sim.state.seed,
        }

    @router.post("/faults")
    async def add_fault(fault: FaultIn) -> dict[str, Any]:
        return sim.faults.add(**fault.model_dump()).as_dict()

    @router.get("/faults")
    async def list_faults() -> list[dict[str, Any]]:
        return [rule.as_dict() for rule in sim.faults.rules]

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        sim.faults.clear()
        return {"success": True}

    @router.put("/latency")
    async def set_latency(body: SecondsIn) -> dict[str, Any]:
        sim.faults.latency = body.seconds
        return {"success": True, "latency": body.seconds}

    @router.put("/boot-delay")
    async def set_boot_delay(body: SecondsIn) -> dict[str, Any]:
        machines.set_boot_delay(body.seconds)
        return {"success": True, "boot_delay": body.seconds}

    @router.put("/rate-limit")
    async def set_rate_limit(body: RateLimitIn) -> dict[str, Any]:
        sim.limiter = RateLimiter(body.scale) if body.enabled else None
        return {"success": True, "enabled": body.enabled, "scale": body.scale}

    @router.post("/fail-next-create")
    async def fail_next_create(body: CountIn) -> dict[str, Any]:
        machines.failing_creates = body.count
        return {"success": True, "failing_creates": body.count}

    @router.post("/offers/{offer_id}/take")
    async def take_offer(offer_id: int) -> dict[str, Any]:
        if offer_id not in sim.catalogue:
            raise VastError(404, "not_found", f"offer {offer_id} does not exist")
        if offer_id in sim.state.rented_offers():
            raise VastError(409, "invalid_state", f"offer {offer_id} is already rented")
        sim.state.taken_offers.append(offer_id)
        machines.save()
        return {"success": True, "offer_id": offer_id}

    @router.delete("/offers/{offer_id}/take")
    async def release_offer(offer_id: int) -> dict[str, Any]:
        if offer_id not in sim.state.taken_offers:
            raise VastError(404, "not_found", f"offer {offer_id} was not taken")
        sim.state.taken_offers.remove(offer_id)
        machines.save()
        return {"success": True, "offer_id": offer_id}

    @router.get("/instances")
    async def list_instances() -> list[dict[str, Any]]:
        return [instance_with_paths(instance_id) for instance_id in sim.state.instances]

    @router.get("/instances/{instance_id}")
    async def show_instance(instance_id: int) -> dict[str, Any]:
        return instance_with_paths(instance_id)

    @router.post("/instances/{instance_id}/interrupt")
    async def interrupt(instance_id: int) -> dict[str, Any]:
        await machines.interrupt(instance_id)
        return instance_with_paths(instance_id)

    @router.post("/instances/{instance_id}/take-host")
    async def take_host(instance_id: int) -> dict[str, Any]:
        machines.take_host(instance_id)
        return instance_with_paths(instance_id)

    @router.delete("/instances/{instance_id}/take-host")
    async def return_host(instance_id: int) -> dict[str, Any]:
        await machines.return_host(instance_id)
        return instance_with_paths(instance_id)

    @router.put("/instances/{instance_id}/gpu")
    async def set_gpu(instance_id: int, body: GpuLoadIn) -> dict[str, Any]:
        machines.set_gpu_load(instance_id, body.utilization, body.memory_used_mb)
        return instance_with_paths(instance_id)

    router.include_router(gce_admin_router(sim.gce))
    return router
