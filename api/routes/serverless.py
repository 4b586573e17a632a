"""`/api/v1/serverless`: the seed's routes (enable, disable, status, pause, resume) and key
rotation. A machine in serverless mode is paused when idle and resumed by the first request to
its gateway URL (`/serverless/{machine_id}/...`, api/gateway/)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import (
    ActionContext,
    CurrentUser,
    LiveMachine,
    MachineClientDep,
    OwnedMachine,
    Reason,
    SessionDep,
    SettingsDep,
)
from api.schemas.common import ACTION_RESPONSES, COMMON_RESPONSES, CONFLICT, INVALID, ActionAccepted
from api.schemas.serverless import (
    EndpointKeyOut,
    ServerlessDisable,
    ServerlessEnable,
    ServerlessEnabled,
    ServerlessStatusOut,
)
from api.services import serverless as service
from api.services.serverless_status import gateway_url

router = APIRouter(prefix=service.SERVERLESS_PATH, tags=["serverless"], responses=COMMON_RESPONSES)


@router.post("/enable", response_model=ServerlessEnabled, responses={**CONFLICT, **INVALID})
async def enable(
    body: ServerlessEnable,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    machines: MachineClientDep,
    request: Request,
) -> ServerlessEnabled:
    """Turn serverless mode on (or change its configuration): the machine is paused after
    `idle_timeout_minutes` without requests, GPU load or SSH input, and the first request to
    `gateway_url` resumes it. The endpoint key is in the answer once, on the first enable."""
    return await service.enable(
        session=session,
        settings=settings,
        machines=machines,
        owner_id=user.id,
        base_url=str(request.base_url),
        body=body,
    )


@router.post("/disable", response_model=ServerlessStatusOut, responses=CONFLICT)
async def disable(
    body: ServerlessDisable,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    machines: MachineClientDep,
    request: Request,
) -> ServerlessStatusOut:
    """Turn serverless mode off: the gateway stops taking requests for the machine and idle
    machines hibernate again, as configured. The key is kept for a later enable."""
    return await service.disable(
        session=session,
        settings=settings,
        machines=machines,
        owner_id=user.id,
        base_url=str(request.base_url),
        machine_id=body.instance_id,
    )


@router.get("/status/{machine_id}", response_model=ServerlessStatusOut)
def status(
    machine: OwnedMachine, session: SessionDep, settings: SettingsDep, request: Request
) -> ServerlessStatusOut:
    """The mode, its configuration, and what it did since it was last enabled: paused time,
    savings, resume latency, cycles."""
    return service.current_status(session, settings, str(request.base_url), machine)


@router.post("/pause/{machine_id}", responses=ACTION_RESPONSES)
async def pause(
    action: ActionContext, request: Request, reason: Reason = None
) -> ServerlessStatusOut | ActionAccepted:
    """Pause a machine in serverless mode now (snapshot, then stop: GPU billing stops); the
    next request to its gateway URL resumes it."""
    return await service.act(action, "pause", reason, str(request.base_url))


@router.post("/resume/{machine_id}", responses=ACTION_RESPONSES)
async def resume(
    action: ActionContext, request: Request, reason: Reason = None
) -> ServerlessStatusOut | ActionAccepted:
    """Resume a paused machine in serverless mode without waiting for a request (on its host,
    else on a new offer from the pause's snapshot)."""
    return await service.act(action, "resume", reason, str(request.base_url))


@router.post("/rotate-key/{machine_id}", response_model=EndpointKeyOut, responses=CONFLICT)
async def rotate_key(
    machine: LiveMachine, session: SessionDep, settings: SettingsDep, request: Request
) -> EndpointKeyOut:
    """A new endpoint key, shown this once; the old one stops working at once."""
    row, key = await run_in_threadpool(service.rotate_key, session, machine)
    return EndpointKeyOut(
        machine_id=machine.id,
        endpoint_key=key,
        key_prefix=row.key_prefix,
        gateway_url=gateway_url(settings, str(request.base_url), machine.id),
    )
