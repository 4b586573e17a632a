"""The GPU machine's CPU standby: `/api/v1/machines/{id}/standby` (read, configure, remove),
`/api/v1/machines/{id}/migrate` (onto the standby or back onto a GPU) and your defaults at
`/api/v1/settings/standby`. The workspace is synced to the standby every interval by the GPU
machine's agent; when the GPU is lost the machine runs on its standby until a new GPU has the
workspace back."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import (
    ActionContext,
    CurrentUser,
    LiveMachine,
    MachineClientDep,
    OwnedMachine,
    Reason,
    SessionDep,
)
from api.schemas.common import (
    ACTION_RESPONSES,
    AUTHENTICATED,
    COMMON_RESPONSES,
    CONFLICT,
    INVALID,
    ActionAccepted,
)
from api.schemas.machines import MachineOut
from api.schemas.standby import (
    MigrateBody,
    StandbyConfigUpdate,
    StandbyOut,
    StandbySettingsOut,
    StandbySettingsUpdate,
)
from api.services import standby as service
from api.services.machines import MACHINES_PATH

router = APIRouter(prefix=MACHINES_PATH, tags=["standby"], responses=COMMON_RESPONSES)
settings_router = APIRouter(prefix=service.SETTINGS_PATH, tags=["standby"], responses=AUTHENTICATED)


@router.get("/{machine_id}/standby", response_model=StandbyOut)
def get_standby(machine: OwnedMachine, session: SessionDep) -> StandbyOut:
    """The standby's config, where it runs and how to SSH in, which side serves the workspace,
    and the sync: its health, the last completed sync and the lag since (what a GPU loss now
    would lose), with the agent's newest figures."""
    return service.current(session, machine)


@router.put("/{machine_id}/standby", response_model=StandbyOut, responses={**CONFLICT, **INVALID})
async def put_standby(
    body: StandbyConfigUpdate,
    machine: LiveMachine,
    session: SessionDep,
    machines: MachineClientDep,
    reason: Reason = None,
) -> StandbyOut:
    """Change the standby: the fields given, the others keep their value (a machine that never
    had one starts from your defaults). `enabled: true` creates it, `false` removes it."""
    return await service.configure(
        session=session, machines=machines, machine=machine, body=body, reason=reason
    )


@router.delete("/{machine_id}/standby", response_model=StandbyOut, responses=CONFLICT)
async def delete_standby(
    machine: LiveMachine, session: SessionDep, machines: MachineClientDep, reason: Reason = None
) -> StandbyOut:
    """Remove the standby (its instance is destroyed, the sync stops); its config is kept for
    a later enable."""
    return await service.configure(
        session=session, machines=machines, machine=machine, body=None, reason=reason
    )


@router.post("/{machine_id}/migrate", responses={**ACTION_RESPONSES, **INVALID})
async def migrate(
    body: MigrateBody, action: ActionContext, reason: Reason = None
) -> MachineOut | ActionAccepted:
    """`to: cpu`: a final sync, then the GPU is released and the machine runs on its standby
    (SSH points there). `to: gpu`: a new GPU is rented and the workspace restored onto it from
    the standby, verified, then synced again."""
    return await service.migrate(action, body.to, reason)


@settings_router.get("", response_model=StandbySettingsOut)
def get_settings(user: CurrentUser, session: SessionDep) -> StandbySettingsOut:
    """Your standby defaults (Dumont's until you save yours)."""
    return service.settings_out(session, user.id)


@settings_router.put("", response_model=StandbySettingsOut, responses=INVALID)
def put_settings(
    body: StandbySettingsUpdate, user: CurrentUser, session: SessionDep
) -> StandbySettingsOut:
    """Change your defaults (the fields given): a new machine's standby starts from them, and
    with `auto_standby` every new GPU machine gets one."""
    return service.put_settings(session, user.id, body)
