"""The agent's request body (agent/PROTOCOL.md): one report, or a batch of at most 500.

Unknown readings are null, never 0. Timestamps more than five minutes ahead of the server's
clock are refused; the clock comes in through the validation context (`{"now": datetime}`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationInfo,
    model_validator,
)

MAX_BATCH = 500
MAX_CLOCK_AHEAD = timedelta(minutes=5)

Percent = Annotated[float, Field(ge=0, le=100)]
Size = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]


def _not_in_future(value: datetime, info: ValidationInfo) -> datetime:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    now = (info.context or {}).get("now") or datetime.now(UTC)
    if value > now + MAX_CLOCK_AHEAD:
        raise ValueError("is more than 5 minutes in the future: check the machine's clock")
    return value


Timestamp = Annotated[datetime, AfterValidator(_not_in_future)]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: one such string would fail the writer's whole batch.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


StoredText = Annotated[str, AfterValidator(_no_nul)]


def _used_within_total(model: BaseModel, used_field: str, total_field: str) -> None:
    used, total = getattr(model, used_field), getattr(model, total_field)
    if used is not None and total is not None and used > total:
        raise ValueError(f"{used_field} ({used:g}) exceeds {total_field} ({total:g})")


class _Report(BaseModel):
    # Unknown fields are ignored: a newer agent may send more than this API knows.
    model_config = ConfigDict(extra="ignore", frozen=True)


class GpuMetrics(_Report):
    utilization_percent: Percent | None = None
    memory_used_mb: Size | None = None
    memory_total_mb: Size | None = None
    temperature_celsius: float | None = Field(default=None, ge=-50, le=200)
    power_watts: Size | None = None

    @model_validator(mode="after")
    def _memory_fits(self) -> Self:
        _used_within_total(self, "memory_used_mb", "memory_total_mb")
        return self


class GpuReading(GpuMetrics):
    index: Count
    name: str | None = Field(default=None, max_length=200)


class SyncBlock(_Report):
    """The standby sync as the agent saw it (agent/sync_status.py); present only with a
    standby linked."""

    last_success_at: Timestamp | None = None
    last_duration_seconds: float | None = Field(default=None, ge=0, le=7 * 24 * 3600)
    last_bytes_sent: int | None = Field(default=None, ge=0, le=2**62)
    consecutive_failures: Count = Field(default=0, le=10**9)
    error: StoredText | None = Field(default=None, max_length=2000)
    target: StoredText | None = Field(default=None, max_length=300)


class AgentStatusReport(_Report):
    instance_id: str = Field(min_length=1, max_length=64, description="The Dumont machine id")
    timestamp: Timestamp
    hostname: str | None = Field(default=None, max_length=255)
    agent_version: StoredText | None = Field(default=None, max_length=64)
    interval_seconds: int = Field(default=30, ge=1, le=3600)
    gpu_metrics: GpuMetrics | None = None
    gpus: list[GpuReading] | None = Field(default=None, max_length=64)
    gpu_error: str | None = Field(default=None, max_length=2000)
    process_count: Count | None = None
    active_users: Count | None = None
    last_activity: Timestamp | None = None
    cpu_percent: Percent | None = None
    memory_used_mb: Size | None = None
    memory_total_mb: Size | None = None
    disk_used_gb: Size | None = None
    disk_total_gb: Size | None = None
    net_rx_bytes_per_s: Size | None = None
    net_tx_bytes_per_s: Size | None = None
    sync: SyncBlock | None = None

    @model_validator(mode="after")
    def _used_fits(self) -> Self:
        _used_within_total(self, "memory_used_mb", "memory_total_mb")
        _used_within_total(self, "disk_used_gb", "disk_total_gb")
        return self


class AgentStatusBatch(_Report):
    samples: list[AgentStatusReport] = Field(min_length=1, max_length=MAX_BATCH)


def _kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "samples" in value else "report"


AgentStatusBody = Annotated[
    Annotated[AgentStatusReport, Tag("report")] | Annotated[AgentStatusBatch, Tag("batch")],
    Discriminator(_kind),
]
agent_status_body: TypeAdapter[AgentStatusReport | AgentStatusBatch] = TypeAdapter(AgentStatusBody)


def parse_agent_status(body: bytes, now: datetime) -> list[AgentStatusReport]:
    """The reports in the body, oldest first; raises pydantic.ValidationError."""
    parsed = agent_status_body.validate_json(body, context={"now": now})
    return parsed.samples if isinstance(parsed, AgentStatusBatch) else [parsed]
