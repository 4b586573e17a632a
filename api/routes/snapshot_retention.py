"""`/api/v1/snapshots/retention`: how many snapshots of each of your machines are kept, and how
long a deleted machine's are, overriding the server's defaults for your snapshots only."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.schemas.common import AUTHENTICATED, INVALID
from api.schemas.retention import RetentionIn, RetentionOut
from core.snapshots.owner_retention import effective_retention, reset_retention, update_retention
from core.snapshots.policy import SnapshotPolicy

router = APIRouter(
    prefix="/api/v1/snapshots/retention",
    tags=["snapshots"],
    responses=AUTHENTICATED,
)


@router.get("", response_model=RetentionOut)
def get_retention(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> RetentionOut:
    """Your retention: your own values where you set them, the defaults elsewhere."""
    policy = SnapshotPolicy.from_settings(settings)
    return RetentionOut.of(effective_retention(session, policy, user.id))


@router.put("", response_model=RetentionOut, responses=INVALID)
def put_retention(
    body: RetentionIn, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> RetentionOut:
    """Change the fields given; `null` puts a field back to the default. Applies from the next
    retention pass (hourly)."""
    policy = SnapshotPolicy.from_settings(settings)
    try:
        retention = update_retention(session, policy, user.id, body.change())
        session.commit()
    except IntegrityError:
        # Another request created this owner's row meanwhile: apply the change to that one.
        session.rollback()
        retention = update_retention(session, policy, user.id, body.change())
        session.commit()
    return RetentionOut.of(retention)


@router.delete("", response_model=RetentionOut)
def delete_retention(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> RetentionOut:
    """Back to the defaults for both fields."""
    policy = SnapshotPolicy.from_settings(settings)
    retention = reset_retention(session, policy, user.id)
    session.commit()
    return RetentionOut.of(retention)
