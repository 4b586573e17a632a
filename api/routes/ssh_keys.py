"""`/api/v1/ssh-keys`: the owner's public keys, attached to every machine they run."""

from __future__ import annotations

import logging
from typing import Annotated

import asyncssh
from fastapi import APIRouter, HTTPException, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.service import RPCError

from api.deps import ConnectorDep, CurrentUser, SessionDep
from api.pagination import Page, oldest_first
from api.schemas.common import AUTHENTICATED, ErrorOut, row_id
from api.schemas.ssh_keys import SshKeyCreate, SshKeyOut
from api.temporal import TemporalConnector, TemporalUnavailable
from core.contracts.states import MachineState
from core.models import Machine, SshKey
from workflows.client import MachineClient

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1/ssh-keys",
    tags=["ssh-keys"],
    responses=AUTHENTICATED,
)

# Machines whose workflow has ended: nothing to attach a key to.
_ENDED = (MachineState.DESTROYED.value, MachineState.DELETED.value)


async def _tell_machines(
    connector: TemporalConnector, machine_ids: list[str], fingerprint: str
) -> None:
    """Signal the owner's live machines so they attach the new key. Best effort: the key is
    saved either way, and every start or wake attaches the owner's keys again."""
    try:
        await MachineClient(await connector.client()).keys_changed(machine_ids, fingerprint)
    except (TemporalUnavailable, RPCError) as exc:
        log.warning("new SSH key not sent to running machines: %s", exc)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SshKeyOut,
    responses={409: {"model": ErrorOut, "description": "You already added this key"}},
)
async def add_ssh_key(
    body: SshKeyCreate, user: CurrentUser, session: SessionDep, connector: ConnectorDep
) -> SshKey:
    fingerprint = asyncssh.import_public_key(body.public_key).get_fingerprint("sha256")
    key = SshKey(
        user_id=user.id, name=body.name, public_key=body.public_key, fingerprint=fingerprint
    )
    machine_ids = await run_in_threadpool(_save_key, session, key)
    if machine_ids:
        await _tell_machines(connector, machine_ids, fingerprint)
    return key


def _save_key(session: Session, key: SshKey) -> list[str]:
    """Save the key; return the owner's machines that may need it (their workflows live on)."""
    session.add(key)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"you already added this key ({key.fingerprint})"
        ) from None
    return list(
        session.exec(
            select(Machine.id).where(
                Machine.owner_id == key.user_id, col(Machine.status).not_in(_ENDED)
            )
        )
    )


@router.get("", response_model=list[SshKeyOut])
def list_ssh_keys(user: CurrentUser, session: SessionDep, page: Page) -> list[SshKey]:
    """Your keys, oldest first."""
    query = select(SshKey).where(SshKey.user_id == user.id)
    return page.rows(session, query, oldest_first(SshKey.id))


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorOut, "description": "No such key (or not yours)"}},
)
def delete_ssh_key(
    key_id: Annotated[int, row_id("ssh key")], user: CurrentUser, session: SessionDep
) -> Response:
    """Forget the key. Machines that already have it keep it until they are rebuilt."""
    key = session.get(SshKey, key_id)
    if key is None or key.user_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"ssh key {key_id} not found")
    session.delete(key)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
