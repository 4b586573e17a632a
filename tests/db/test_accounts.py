"""API tokens: a token identifies its user; revoked or unknown ones don't; only hashes are kept."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.accounts import create_user, hash_token, issue_token, revoke_token, user_for_token
from core.db import session_scope


def test_a_token_identifies_its_user(engine: Engine) -> None:
    with session_scope(engine) as session:
        alice = create_user(session, "alice")
        create_user(session, "bob")
        token = issue_token(session, alice.id)
    with session_scope(engine) as session:
        user = user_for_token(session, token)
        assert user is not None and user.name == "alice"


def test_revoked_and_unknown_tokens_are_refused(engine: Engine) -> None:
    with session_scope(engine) as session:
        user = create_user(session, "carol")
        token = issue_token(session, user.id)
        kept = issue_token(session, user.id, name="second")
    with session_scope(engine) as session:
        assert revoke_token(session, token)
    with session_scope(engine) as session:
        assert user_for_token(session, token) is None
        assert user_for_token(session, token + "x") is None
        assert user_for_token(session, "dmt_never-issued") is None
        assert not revoke_token(session, "dmt_never-issued")
        assert user_for_token(session, kept) is not None  # revoking one leaves the others


def test_only_the_hash_of_a_token_is_stored(engine: Engine) -> None:
    with session_scope(engine) as session:
        token = issue_token(session, create_user(session, "dave").id)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_tokens")).mappings().all()
    stored = [str(value) for row in rows for value in row.values()]
    assert all(token not in value for value in stored)
    assert hash_token(token) in stored
    assert token[:12] in stored  # the prefix that tells tokens apart in listings
