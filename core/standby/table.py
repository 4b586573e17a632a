"""The standby tables. `standby_settings` holds an owner's defaults (a new machine gets a
standby from them when `auto_standby` is on); `machine_standby` is the read model of one
machine's standby, written only by the record activity from the workflow's outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlmodel import Field, SQLModel

from core.contracts.standby import (
    DEFAULT_IDLE_MIGRATE_MINUTES,
    DEFAULT_STANDBY_DISK_GB,
    DEFAULT_STANDBY_MACHINE_TYPE,
    DEFAULT_SYNC_INTERVAL_SECONDS,
)
from core.db_types import UtcDateTime, timestamp_field


class StandbySettings(SQLModel, table=True):
    """An owner's standby defaults: `StandbyConfig`'s fields but `enabled`."""

    __tablename__ = "standby_settings"

    owner_id: str = Field(primary_key=True, foreign_key="users.id", max_length=64)
    auto_standby: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    provider: str = Field(default="gcp", max_length=16)
    machine_type: str | None = Field(default=DEFAULT_STANDBY_MACHINE_TYPE, max_length=64)
    zone: str | None = Field(default=None, max_length=64)
    spot: bool = Field(default=True, sa_column_kwargs={"server_default": sa_true()})
    disk_gb: int = Field(default=DEFAULT_STANDBY_DISK_GB)
    max_price: float | None = None
    sync_interval_seconds: int = Field(default=DEFAULT_SYNC_INTERVAL_SECONDS)
    excludes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    auto_migrate: bool = Field(default=True, sa_column_kwargs={"server_default": sa_true()})
    idle_migrate_minutes: int = Field(default=DEFAULT_IDLE_MIGRATE_MINUTES)
    updated_at: datetime = timestamp_field(nullable=False)


class MachineStandby(SQLModel, table=True):
    """One machine's standby as its workflow last reported it (`StandbyStatus`)."""

    __tablename__ = "machine_standby"

    machine_id: str = Field(primary_key=True, foreign_key="machines.id", max_length=64)
    # The config (`StandbyConfig`).
    enabled: bool = Field(default=False)
    provider: str = Field(default="gcp", max_length=16)
    machine_type: str | None = Field(default=None, max_length=64)
    zone: str | None = Field(default=None, max_length=64)
    spot: bool = Field(default=True)
    disk_gb: int = Field(default=DEFAULT_STANDBY_DISK_GB)
    max_price: float | None = None
    sync_interval_seconds: int = Field(default=DEFAULT_SYNC_INTERVAL_SECONDS)
    excludes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    auto_migrate: bool = Field(default=True)
    idle_migrate_minutes: int = Field(default=DEFAULT_IDLE_MIGRATE_MINUTES)
    # The standby instance (None: none now): where it runs, what it costs, how to log in.
    instance_id: str | None = Field(default=None, max_length=128)
    instance_provider: str | None = Field(default=None, max_length=32)
    instance_zone: str | None = Field(default=None, max_length=64)
    instance_type: str | None = Field(default=None, max_length=64)
    price_per_hour: float | None = None
    ssh_host: str | None = Field(default=None, max_length=255)
    ssh_port: int | None = None
    ssh_user: str | None = Field(default=None, max_length=64)
    # Which machine serves the workspace now, and why it is the standby.
    side: str = Field(default="gpu", max_length=8)
    reason: str | None = Field(default=None, max_length=16)
    health: str = Field(default="unknown", max_length=16)
    last_sync_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    sync_error: str | None = Field(default=None, max_length=2000)
    problem: str | None = Field(default=None, max_length=2000)
    moved_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    updated_at: datetime = timestamp_field(nullable=False)
