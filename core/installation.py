"""This installation's id: one per database, made by the migration that adds it, so every
API and worker process of one installation labels instances alike, and a second installation
on the same cloud account (its own database) never takes them for its own."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, select

from core.db import session_scope
from core.settings import Settings


class Installation(SQLModel, table=True):
    __tablename__ = "installation"

    id: str = Field(primary_key=True, max_length=32)


def installation_id(engine: Engine) -> str:
    with session_scope(engine) as session:
        row = session.exec(select(Installation)).first()
    if row is None:  # the migration makes it; a database without one was not migrated
        raise RuntimeError("the database has no installation id: run the migrations")
    return row.id


def with_installation(settings: Settings, engine: Engine) -> Settings:
    """`settings` with `installation_id` filled in from the database unless set."""
    if settings.installation_id is not None:
        return settings
    return settings.model_copy(update={"installation_id": installation_id(engine)})
