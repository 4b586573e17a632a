"""The orphan instances table: one row per instance the reconciler found owned by no live
machine, from when it was first seen until it is destroyed or owned again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from core.db_types import UtcDateTime


class OrphanInstance(SQLModel, table=True):
    __tablename__ = "orphan_instances"

    provider: str = Field(primary_key=True, max_length=32)
    instance_id: str = Field(primary_key=True, max_length=128)
    label: str = Field(max_length=200)
    machine_id: str | None = Field(default=None, max_length=64)
    # Why no machine owns it, in words for whoever reads the log or the table.
    reason: str = Field(max_length=500)
    price_per_hour: float | None = None
    first_seen_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    destroyed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))
