"""Database tables (sqlmodel). Read models and accounts; Temporal stays the source of truth
for what a machine is doing. These rows never cross Temporal: pass `core.contracts` dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy import (
    false as sa_false,
)
from sqlalchemy import (
    true as sa_true,
)
from sqlmodel import Field, SQLModel

from core.db_types import UtcDateTime, timestamp_field
from core.db_types import utcnow as utcnow  # what the rows' writers stamp with
from core.installation import Installation as Installation
from core.offers.table import OfferReservation as OfferReservation  # on the same metadata
from core.orphans.table import OrphanInstance as OrphanInstance
from core.serverless.table import ServerlessColdStart as ServerlessColdStart
from core.serverless.table import ServerlessEndpoint as ServerlessEndpoint
from core.snapshots.tables import Snapshot as Snapshot
from core.snapshots.tables import SnapshotChunk as SnapshotChunk
from core.snapshots.tables import SnapshotPack as SnapshotPack
from core.snapshots.tables import SnapshotPackRef as SnapshotPackRef
from core.snapshots.tables import SnapshotRetention as SnapshotRetention
from core.standby.table import MachineStandby as MachineStandby
from core.standby.table import StandbySettings as StandbySettings


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = timestamp_field(nullable=False)


class ApiToken(SQLModel, table=True):
    """A user's API token. Only its SHA-256 is stored; the plaintext is shown once."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=64)
    name: str = Field(default="default", max_length=200)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)  # first characters, to tell tokens apart in listings
    created_at: datetime = timestamp_field(nullable=False)
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
    created_at: datetime = timestamp_field(nullable=False)


class Machine(SQLModel, table=True):
    """Status projection of one machine, written by activities on every state change."""

    __tablename__ = "machines"

    id: str = Field(primary_key=True, max_length=64)
    owner_id: str = Field(foreign_key="users.id", index=True, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    provider: str = Field(default="vast", max_length=32)
    kind: str = Field(default="gpu", max_length=8, sa_column_kwargs={"server_default": "gpu"})
    gpu_name: str | None = Field(default=None, max_length=100)
    num_gpus: int = 1
    image: str = Field(max_length=1024)
    disk_gb: int
    region: str | None = Field(default=None, max_length=16)
    max_price: float | None = None
    min_reliability: float | None = None
    min_vram_gb: float | None = None
    # A machine-type catalogue's choice (GCP): see MachineSpec.
    machine_type: str | None = Field(default=None, max_length=64)
    zone: str | None = Field(default=None, max_length=64)
    spot: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # A vast interruptible (bid) instance and its bid, USD/h (null: each offer's minimum).
    interruptible: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    bid_price: float | None = None

    status: str = Field(default="starting", max_length=32, index=True)
    status_reason: str | None = Field(default=None, max_length=2000)
    instance_id: str | None = Field(default=None, max_length=64)
    price_per_hour: float | None = None
    geolocation: str | None = Field(default=None, max_length=200)
    ssh_host: str | None = Field(default=None, max_length=255)
    ssh_port: int | None = None
    # The instance's login user; null on rows from before the column (vast's root).
    ssh_user: str | None = Field(default=None, max_length=64)

    created_at: datetime = timestamp_field(nullable=False)
    updated_at: datetime = timestamp_field(nullable=False)

    # Auto-hibernation config (the seed's `auto_hibernation` block).
    auto_hibernation_enabled: bool = Field(
        default=True, sa_column_kwargs={"server_default": sa_true()}
    )
    pause_after_minutes: int = Field(default=3, sa_column_kwargs={"server_default": "3"})
    delete_after_minutes: int = Field(default=30, sa_column_kwargs={"server_default": "30"})
    gpu_usage_threshold: float = Field(default=5.0, sa_column_kwargs={"server_default": "5.0"})
    pre_hibernate_command: str | None = Field(default=None, max_length=4000)
    pre_hibernate_timeout_seconds: int = Field(
        default=300, sa_column_kwargs={"server_default": "300"}
    )
    pre_hibernate_on_failure: str = Field(
        default="abort", max_length=16, sa_column_kwargs={"server_default": "abort"}
    )

    # Hibernation bookkeeping, written with every state change (activities/records.py).
    idle_since: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    hibernated_since: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    # Hours hibernated before `hibernated_since`, in seconds, and what they would have cost.
    hibernated_seconds: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    hibernated_cost_avoided: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    # The instance price while hibernated (the instance itself is gone).
    hibernated_price_per_hour: float | None = None
    snapshot_id: str | None = Field(default=None, max_length=64)
    # Pause bookkeeping, as for hibernation: the open paused period, the closed ones' seconds,
    # the GPU cost they avoided and what the stopped disk cost meanwhile.
    paused_since: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    paused_seconds: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    paused_cost_avoided: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    paused_disk_cost: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    # The price the machine ran at before its pause: what a paused hour does not bill.
    paused_price_per_hour: float | None = None
    # What the current instance costs per hour while stopped (its disk).
    disk_price_per_hour: float | None = None
    # `standby` bookkeeping, as for hibernation (null: never on its standby), and the GPU
    # price a standby hour does not bill. Then the GPU's cost ledger: billed up to
    # `billed_since`, and the rate since (the GPU's or its stopped disk's; the standby bills
    # from its instance records, the snapshots' storage is added when read).
    standby_since: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    standby_seconds: float | None = None
    standby_cost_avoided: float | None = None
    standby_price_per_hour: float | None = None
    billed_since: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    billed_usd: float | None = None
    billed_per_hour: float | None = None
    # A paused machine is hibernated after this long (its stopped disk bills; a snapshot less).
    hibernate_paused_after_minutes: int = Field(
        default=24 * 60, sa_column_kwargs={"server_default": "1440"}
    )

    # Wake/sleep schedule (the Temporal Schedules are the truth; this is what the user set).
    wake_time: str | None = Field(default=None, max_length=5)
    sleep_time: str | None = Field(default=None, max_length=5)
    schedule_timezone: str | None = Field(default=None, max_length=64)
    # What the schedule does: "hibernate" (sleep) and wake, or "pause" and resume.
    schedule_action: str = Field(
        default="hibernate", max_length=16, sa_column_kwargs={"server_default": "hibernate"}
    )

    # A service on the machine: what was declared at create (env values are never stored) and
    # each published port's public address on the current instance.
    declared_ports: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    env_names: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    on_start: str | None = Field(default=None, max_length=8192)
    ports: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))

    # Latest agent report, written by the heartbeat ingest (api/ingest).
    last_report_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    last_activity: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    gpu_utilization: float | None = None
    report_interval_seconds: int | None = None
    agent_version: str | None = Field(default=None, max_length=64)
    # What the machine workflow was last told (`agent_report` signals go on transitions only).
    agent_online: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    agent_busy: bool | None = None
    # The standby sync's newest figures, as the agent reported them (null: no sync reported),
    # and its health as the machine workflow was last told (`standby_sync` on transitions).
    sync_last_success_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    sync_seconds: float | None = None
    sync_bytes: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    sync_failures: int | None = None
    sync_error: str | None = Field(default=None, max_length=2000)
    sync_health: str | None = Field(default=None, max_length=16)
    # The machine workflow's outbox records this row holds, up to this number (a batch sent
    # again applies only what is newer).
    records_applied: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


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
    created_at: datetime = timestamp_field(nullable=False)
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
    timestamp: datetime = timestamp_field(nullable=False)


class AgentToken(SQLModel, table=True):
    """A machine's agent token: it may post that machine's status and nothing else. Only its
    SHA-256 is stored; issuing a new one revokes the machine's previous ones."""

    __tablename__ = "agent_tokens"

    id: int | None = Field(default=None, primary_key=True)
    machine_id: str = Field(foreign_key="machines.id", index=True, max_length=64)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = timestamp_field(nullable=False)
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


# Metrics tables carry no foreign keys: they are written in bulk by the heartbeat writer, whose
# samples only come from machines an agent token resolved, and are pruned by age.


class MetricSample(SQLModel, table=True):
    """One agent report's numbers, kept for `DUMONT_METRICS_RAW_RETENTION_HOURS`."""

    __tablename__ = "metric_samples"
    __table_args__ = (
        Index("ix_metric_samples_machine_time", "machine_id", "timestamp"),
        Index("ix_metric_samples_time", "timestamp"),
    )

    # INTEGER on SQLite, where only that type makes the rowid alias that autoincrements.
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
    machine_id: str = Field(max_length=64)
    timestamp: datetime = timestamp_field(nullable=False)
    gpu_utilization: float | None = None
    gpu_memory_used_mb: float | None = None
    gpu_memory_total_mb: float | None = None
    cpu_percent: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    disk_used_gb: float | None = None
    disk_total_gb: float | None = None
    net_rx_bytes_per_s: float | None = None
    net_tx_bytes_per_s: float | None = None
    active_users: int | None = None
    process_count: int | None = None


# Series kept in rollups: `MetricSample` columns. Each has sum, count, min and max per bucket, so
# averages and maxima over any union of buckets are exact; count excludes unknown readings.
ROLLUP_SERIES: tuple[str, ...] = (
    "gpu_utilization",
    "gpu_memory_used_mb",
    "gpu_memory_total_mb",
    "cpu_percent",
    "memory_used_mb",
    "memory_total_mb",
    "disk_used_gb",
    "disk_total_gb",
    "net_rx_bytes_per_s",
    "net_tx_bytes_per_s",
)
ROLLUP_AGGREGATES: tuple[str, ...] = ("sum", "count", "min", "max")

# Per machine, per resolution (60, 3600 or 86400 s), per bucket start (epoch seconds, UTC).
metric_rollups = Table(
    "metric_rollups",
    SQLModel.metadata,
    Column("machine_id", String(64), nullable=False),
    Column("resolution", Integer, nullable=False),
    Column("bucket_start", BigInteger, nullable=False),
    *(
        Column(
            f"{series}_{agg}",
            Integer if agg == "count" else Float,
            nullable=agg != "count",
            server_default="0" if agg == "count" else None,
        )
        for series in ROLLUP_SERIES
        for agg in ROLLUP_AGGREGATES
    ),
    PrimaryKeyConstraint("machine_id", "resolution", "bucket_start"),
    Index("ix_metric_rollups_resolution_bucket", "resolution", "bucket_start"),
)


# --- alerts (core/alerts) ----------------------------------------------------------------------


class AlertRule(SQLModel, table=True):
    """One of an owner's alert rules (`core.alerts.rules.RuleKind`); the defaults are created
    the first time the owner's rules are read."""

    __tablename__ = "alert_rules"
    __table_args__ = (Index("ix_alert_rules_owner_kind", "owner_id", "kind", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(foreign_key="users.id", max_length=64)
    kind: str = Field(max_length=32)
    threshold: float | None = None  # percent; None for machine_offline
    duration_seconds: int = 0
    enabled: bool = True
    updated_at: datetime = timestamp_field(nullable=False)


class AlertWebhook(SQLModel, table=True):
    """Where an owner's alert events are posted, and the secret that signs them."""

    __tablename__ = "alert_webhooks"

    owner_id: str = Field(primary_key=True, foreign_key="users.id", max_length=64)
    url: str | None = Field(default=None, max_length=2048)
    # Kept readable because every delivery is signed with it; shown once, never logged.
    secret: str | None = Field(default=None, max_length=128)
    secret_created_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    updated_at: datetime = timestamp_field(nullable=False)


class Alert(SQLModel, table=True):
    """One firing of a rule on a machine, until it resolves."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_owner_fired", "owner_id", "fired_at"),
        Index("ix_alerts_machine_kind_state", "machine_id", "kind", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(max_length=64)
    machine_id: str = Field(foreign_key="machines.id", max_length=64)
    kind: str = Field(max_length=32)
    state: str = Field(default="firing", max_length=16)  # firing | resolved
    threshold: float | None = None
    value: float | None = None
    reason: str = Field(max_length=2000)
    resolved_reason: str | None = Field(default=None, max_length=2000)
    fired_at: datetime = timestamp_field(nullable=False)
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class AlertDelivery(SQLModel, table=True):
    """One alert event to post to an owner's webhook, retried with backoff until delivered or
    out of attempts. The body is fixed when the event happens, so every attempt sends (and
    signs) the same bytes."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("ix_alert_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_alert_deliveries_owner_created", "owner_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(max_length=64)
    alert_id: int = Field(foreign_key="alerts.id", index=True)
    event: str = Field(max_length=32)  # alert.firing | alert.resolved
    url: str = Field(max_length=2048)
    body: str = Field(max_length=65536)
    status: str = Field(default="pending", max_length=16)  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = timestamp_field(nullable=False)
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class AlertDeliveryAttempt(SQLModel, table=True):
    """Every try of a delivery: the HTTP status it got, or why it got none."""

    __tablename__ = "alert_delivery_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="alert_deliveries.id", index=True)
    attempted_at: datetime = timestamp_field(nullable=False)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=2000)
