"""`/api/hibernation/stats`: how the caller's fleet stands and what hibernation saved it."""

from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import select

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.schemas.common import AUTHENTICATED
from api.schemas.seed import HibernationStatsOut
from api.services.savings import savings_of
from core.contracts.states import MachineState
from core.models import Machine

router = APIRouter(
    prefix="/api/hibernation",
    tags=["hibernation"],
    responses=AUTHENTICATED,
)


@router.get("/stats", response_model=HibernationStatsOut)
def hibernation_stats(
    user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> HibernationStatsOut:
    """Counts of your machines that are not destroyed, by state, and their net savings."""
    machines = list(
        session.exec(
            select(Machine).where(
                Machine.owner_id == user.id, Machine.status != MachineState.DESTROYED.value
            )
        )
    )
    savings = savings_of(session, settings, user.id, machines)
    by_state: dict[str, int] = {}
    for machine in machines:
        by_state[machine.status] = by_state.get(machine.status, 0) + 1
    return HibernationStatsOut(
        total_instances=len(machines),
        running=by_state.get(MachineState.RUNNING.value, 0),
        idle=by_state.get(MachineState.IDLE.value, 0),
        hibernated=by_state.get(MachineState.HIBERNATED.value, 0),
        deleted=by_state.get(MachineState.DELETED.value, 0),
        paused=by_state.get(MachineState.PAUSED.value, 0),
        savings_usd=round(sum(s.net_usd for s in savings.values()), 6),
    )
