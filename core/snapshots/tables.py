"""The snapshot tables: snapshots, their packs and chunks, which snapshot references which
pack, and per-owner retention. Imported by core/models.py, which re-exports them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
)
from sqlmodel import Field, SQLModel

from core.db_types import UtcDateTime, timestamp_field


def _bytes_column() -> Any:
    return Field(default=0, sa_column=Column(BigInteger(), nullable=False, server_default="0"))


class Snapshot(SQLModel, table=True):
    """One snapshot of a machine's workspace. `pending` until every chunk it references was
    confirmed in the store and its manifest written; then `committed`. Retention turns old ones
    `expired` (the row stays: packs name the snapshot that created them)."""

    __tablename__ = "snapshots"
    __table_args__ = (
        Index("ix_snapshots_machine_created", "machine_id", "created_at"),
        Index("ix_snapshots_owner_status", "owner_id", "status"),
    )

    id: str = Field(primary_key=True, max_length=64)
    owner_id: str = Field(foreign_key="users.id", max_length=64)
    # No foreign key: a snapshot outlives its machine's record.
    machine_id: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)  # pending | committed | expired
    root_hash: str | None = Field(default=None, max_length=64)
    manifest_key: str | None = Field(default=None, max_length=512)
    files: int = 0
    logical_bytes: int = _bytes_column()  # the workspace's size
    uploaded_bytes: int = _bytes_column()  # new pack bytes this snapshot put in the store
    stored_bytes: int = _bytes_column()  # pack bytes it references (shared ones included)
    packs: int = 0
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = timestamp_field(nullable=False)
    committed_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class SnapshotPack(SQLModel, table=True):
    """An object in the store holding many compressed chunks, created by one snapshot run.
    `registered` when its URL was issued, `uploaded` once the machine reported it stored."""

    __tablename__ = "snapshot_packs"

    id: str = Field(primary_key=True, max_length=64)
    owner_id: str = Field(max_length=64, index=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", max_length=64, index=True)
    key: str = Field(max_length=512)
    size: int = _bytes_column()
    chunk_count: int = 0
    state: str = Field(default="registered", max_length=16)
    created_at: datetime = timestamp_field(nullable=False)
    uploaded_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class SnapshotChunk(SQLModel, table=True):
    """Where an owner's chunk lives: deduplication is per owner, never across owners."""

    __tablename__ = "snapshot_chunks"

    owner_id: str = Field(primary_key=True, max_length=64)
    hash: str = Field(primary_key=True, max_length=64)
    pack_id: str = Field(foreign_key="snapshot_packs.id", max_length=64, index=True)
    offset: int = _bytes_column()
    length: int
    raw_size: int
    codec: str = Field(max_length=8)


class SnapshotPackRef(SQLModel, table=True):
    """A committed snapshot needs this pack: garbage collection keeps every referenced pack."""

    __tablename__ = "snapshot_pack_refs"

    snapshot_id: str = Field(foreign_key="snapshots.id", primary_key=True, max_length=64)
    pack_id: str = Field(
        foreign_key="snapshot_packs.id", primary_key=True, max_length=64, index=True
    )


class SnapshotRetention(SQLModel, table=True):
    """An owner's own snapshot retention. A null field follows the global default
    (`SnapshotPolicy`), so a later change of the default still reaches owners who never set it."""

    __tablename__ = "snapshot_retention"

    owner_id: str = Field(primary_key=True, foreign_key="users.id", max_length=64)
    keep_last: int | None = None  # committed snapshots kept per machine
    deleted_retention_days: int | None = None  # 0: a deleted machine's snapshots are kept
    updated_at: datetime = timestamp_field(nullable=False)
