"""Users and API tokens. Tokens are random, shown once, and stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session, select

from core.models import ApiToken, User, utcnow

TOKEN_PREFIX = "dmt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str) -> User:
    user = User(id=f"u_{secrets.token_hex(8)}", name=name)
    session.add(user)
    session.flush()
    return user


def get_or_create_user(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    return user or create_user(session, name)


def issue_token(session: Session, user_id: str, name: str = "default") -> str:
    """Create a token for the user and return its plaintext (the only time it exists)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user_id, name=name, token_hash=hash_token(token), prefix=token[:12])
    )
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    return session.get(User, row.user_id)


def revoke_token(session: Session, token: str) -> bool:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None:
        return False
    row.revoked_at = utcnow()
    session.add(row)
    return True
