"""The per-owner machine quota (`DUMONT_MAX_MACHINES_PER_OWNER`): how many machines one owner
may have holding, or about to take, a provider instance. Creates and wakes past it are
refused with a 409 that says the limit, before anything is written or rented."""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import func
from sqlmodel import Session, col, select

from core.contracts.states import INSTANCELESS_STATES, MachineState
from core.models import Machine, User


class QuotaExceeded(HTTPException):
    def __init__(self, live: int, limit: int) -> None:
        super().__init__(
            status.HTTP_409_CONFLICT,
            f"machine quota reached: you have {live} live machines and the limit is {limit} "
            "per owner; destroy or hibernate one first",
        )


def live_machines(session: Session, owner_id: str) -> int:
    query = (
        select(func.count())
        .select_from(Machine)
        .where(
            Machine.owner_id == owner_id,
            col(Machine.status).not_in([s.value for s in INSTANCELESS_STATES]),
        )
    )
    return int(session.exec(query).one())


def check_quota(session: Session, owner_id: str, limit: int, *, lock: bool = False) -> None:
    """Raise QuotaExceeded when one more live machine would pass `limit`. With `lock`, the
    owner's row is locked first (PostgreSQL), so concurrent creates of one owner count one
    after the other; the caller's transaction holds it until it commits."""
    if lock:
        session.exec(select(User.id).where(User.id == owner_id).with_for_update()).first()
    live = live_machines(session, owner_id)
    if live >= limit:
        raise QuotaExceeded(live, limit)


def check_wake(session: Session, machine: Machine, limit: int) -> None:
    """A wake rents an instance for a machine that has none; one that has one is the
    workflow's to refuse (it is not asleep)."""
    if not MachineState(machine.status).holds_instance():
        check_quota(session, machine.owner_id, limit)
        session.commit()  # the connection back in the pool before the wait on Temporal
