"""Database tables (sqlmodel). Read models and accounts; Temporal stays the source of truth
for what a machine is doing. These rows never cross Temporal: pass `core.types` dataclasses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Dialect, Index
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend: SQLite stores no offset and would hand back naive
    datetimes, which the API would then serialise without one. Naive input is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @staticmethod
    def _as_utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return self._as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return self._as_utc(value)


def _ts(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), **kwargs))


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = _ts(nullable=False)


class ApiToken(SQLModel, table=True):
    """A user's API token. Only its SHA-256 is stored; the plaintext is shown once."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=64)
    name: str = Field(default="default", max_length=200)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)  # first characters, to tell tokens apart in listings
    created_at: datetime = _ts(nullable=False)
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class SshKey(SQLModel, table=True):
    __tablename__ = "ssh_keys"
    __table_args__ = (Index("ix_ssh_keys_user_fingerprint", "user_id", "fingerprint", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=64)
    name: str = Field(max_length=200)
    public_key: str = Field(max_length=16384)
    fingerprint: str = Field(max_length=128)
    created_at: datetime = _ts(nullable=False)


class Machine(SQLModel, table=True):
    """Status projection of one machine, written by activities on every state change."""

    __tablename__ = "machines"

    id: str = Field(primary_key=True, max_length=64)
    owner_id: str = Field(foreign_key="users.id", index=True, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    provider: str = Field(default="vast", max_length=32)
    gpu_name: str = Field(max_length=100)
    num_gpus: int = 1
    image: str = Field(max_length=1024)
    disk_gb: int
    region: str | None = Field(default=None, max_length=16)
    max_price: float | None = None
    min_reliability: float | None = None
    min_vram_gb: float | None = None

    status: str = Field(default="starting", max_length=32, index=True)
    status_reason: str | None = Field(default=None, max_length=2000)
    instance_id: str | None = Field(default=None, max_length=64)
    price_per_hour: float | None = None
    geolocation: str | None = Field(default=None, max_length=200)
    ssh_host: str | None = Field(default=None, max_length=255)
    ssh_port: int | None = None

    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class ProviderInstanceRecord(SQLModel, table=True):
    """Every provider instance Dumont has created, for billing and orphan hunting."""

    __tablename__ = "provider_instances"
    __table_args__ = (
        Index("ix_provider_instances_provider_instance", "provider", "instance_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    machine_id: str = Field(foreign_key="machines.id", index=True, max_length=64)
    provider: str = Field(max_length=32)
    instance_id: str = Field(max_length=64)
    label: str = Field(max_length=256)
    offer_id: str | None = Field(default=None, max_length=64)
    gpu_name: str | None = Field(default=None, max_length=100)
    price_per_hour: float | None = None
    geolocation: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts(nullable=False)
    destroyed_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class Event(SQLModel, table=True):
    """A machine's history: state changes, actions, failures."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_machine_time", "machine_id", "timestamp"),)

    id: int | None = Field(default=None, primary_key=True)
    machine_id: str = Field(foreign_key="machines.id", max_length=64)
    owner_id: str = Field(max_length=64, index=True)
    event_type: str = Field(max_length=64)
    state: str | None = Field(default=None, max_length=32)
    reason: str | None = Field(default=None, max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    timestamp: datetime = _ts(nullable=False)
