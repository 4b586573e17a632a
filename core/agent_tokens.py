"""Agent tokens: one live token per machine, allowed to post that machine's status only.

Random, shown once (written into the agent's config on the machine), stored only as SHA-256.
"""

from __future__ import annotations

import secrets

from sqlalchemy import update
from sqlmodel import Session, col, select

from core.accounts import hash_token
from core.models import AgentToken, utcnow

AGENT_TOKEN_PREFIX = "dma_"


def issue_agent_token(session: Session, machine_id: str) -> str:
    """A new token for the machine's agent; the machine's previous tokens stop working."""
    session.execute(
        update(AgentToken)
        .where(col(AgentToken.machine_id) == machine_id, col(AgentToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    token = AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(AgentToken(machine_id=machine_id, token_hash=hash_token(token), prefix=token[:12]))
    session.flush()
    return token


def machine_for_agent_token(session: Session, token: str) -> str | None:
    """The machine a live agent token belongs to, or None (unknown, revoked, not an agent's)."""
    if not token.startswith(AGENT_TOKEN_PREFIX):
        return None
    row = session.exec(select(AgentToken).where(AgentToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row.machine_id
