"""`/api/v1/machines/{id}/standby`, `/api/v1/machines/{id}/migrate` and
`/api/v1/settings/standby`: the standby's bodies and answers.

Bodies are partial (a field left out keeps its value) and strict (a number as a string, a bool
for a number, an unknown field: a 422 naming it). Their types are checked here; their ranges by
`core.contracts.standby.standby_config_problem`, in the service, so the API and the workflow's
validator refuse with the same words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.common import ApiInput
from core.contracts.standby import (
    MAX_EXCLUDES,
    MAX_SYNC_INTERVAL_SECONDS,
    MIN_SYNC_INTERVAL_SECONDS,
    STANDBY_PROVIDERS,
    Side,
    StandbyReason,
    SyncHealth,
)
from core.contracts.states import MachineState

# Fields a body may leave out but not set to null.
_NOT_NULL = (
    "provider",
    "spot",
    "disk_gb",
    "sync_interval_seconds",
    "excludes",
    "auto_migrate",
    "idle_migrate_minutes",
)


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("may not be null: leave it out to keep its value")
    return value


class StandbyFields(ApiInput):
    """A standby's settings; each one left out keeps its value."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    provider: str | None = Field(
        default=None, max_length=16, description=f"One of {', '.join(STANDBY_PROVIDERS)}"
    )
    machine_type: str | None = Field(
        default=None, max_length=64, examples=["e2-medium"], description="GCE machine type"
    )
    zone: str | None = Field(
        default=None,
        max_length=64,
        examples=["europe-west1-b"],
        description="GCE zone; null: the cheapest zone nearest the GPU's region",
    )
    spot: bool | None = Field(default=None, description="A Spot VM (cheaper, may be preempted)")
    disk_gb: int | None = Field(default=None, description="10 to 65536")
    max_price: float | None = Field(
        default=None, description="vast: the most a CPU offer may cost, USD per hour"
    )
    sync_interval_seconds: int | None = Field(
        default=None,
        description=f"Seconds between syncs, {MIN_SYNC_INTERVAL_SECONDS} to"
        f" {MAX_SYNC_INTERVAL_SECONDS}: at most this much work is lost with the GPU",
    )
    excludes: list[str] | None = Field(
        default=None,
        examples=[["*.tmp", "checkpoints/old/"]],
        description=f"rsync --exclude patterns, relative to the workspace (at most {MAX_EXCLUDES})",
    )
    auto_migrate: bool | None = Field(
        default=None, description="Move an idle machine to its standby instead of hibernating"
    )
    idle_migrate_minutes: int | None = Field(
        default=None, description="Idle minutes before that move, 1 to 10080"
    )

    _present = field_validator(*_NOT_NULL, mode="before")(_not_null)


class StandbyConfigUpdate(StandbyFields):
    """A machine's standby: the fields given change, the others keep their value."""

    enabled: bool | None = Field(default=None, description="false removes the standby")

    _enabled = field_validator("enabled", mode="before")(_not_null)


class StandbySettingsUpdate(StandbyFields):
    """Your defaults for new machines' standbys."""

    auto_standby: bool | None = Field(
        default=None, description="Give every new GPU machine a standby with these settings"
    )

    _auto = field_validator("auto_standby", mode="before")(_not_null)


class MigrateBody(ApiInput):
    model_config = ConfigDict(extra="forbid", strict=True)

    to: Literal["cpu", "gpu"] = Field(
        description="cpu: onto the standby (a final sync, then the GPU is released); gpu: back"
        " onto a new GPU, the workspace restored from the standby"
    )


class StandbyDefaults(BaseModel):
    provider: str
    machine_type: str | None
    zone: str | None
    spot: bool
    disk_gb: int
    max_price: float | None
    sync_interval_seconds: int
    excludes: list[str]
    auto_migrate: bool
    idle_migrate_minutes: int


class StandbyConfigOut(StandbyDefaults):
    enabled: bool


class StandbySettingsOut(StandbyDefaults):
    auto_standby: bool
    # null until first saved: the defaults shown are Dumont's.
    updated_at: datetime | None


class StandbyInstanceOut(BaseModel):
    instance_id: str
    provider: str
    zone: str | None
    machine_type: str | None
    price_per_hour: float | None


class StandbySshOut(BaseModel):
    host: str
    port: int
    user: str
    command: str = Field(examples=["ssh -p 22 dumont@203.0.113.9"])


class AgentSyncOut(BaseModel):
    """The sync as the GPU machine's agent last reported it in a heartbeat."""

    last_success_at: datetime | None
    seconds: float | None
    bytes_sent: int | None
    consecutive_failures: int | None
    error: str | None


class StandbySummary(BaseModel):
    """The standby in a machine's answer; `GET .../standby` has the rest."""

    enabled: bool
    side: Side
    reason: StandbyReason | None
    instance: StandbyInstanceOut | None
    ssh: str | None
    health: SyncHealth
    last_sync_at: datetime | None
    lag_seconds: float | None = Field(
        description="Since the last completed sync: what a GPU loss now would lose (RPO)"
    )
    problem: str | None


class StandbyOut(StandbySummary):
    machine_id: str
    state: MachineState
    config: StandbyConfigOut
    ssh_login: StandbySshOut | None
    sync_error: str | None
    moved_at: datetime | None
    agent_sync: AgentSyncOut | None
