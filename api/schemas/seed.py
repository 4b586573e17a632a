"""The seed's shapes (`/api/instances/...`, `/api/hibernation/stats`), kept exactly as the seed
documents them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.common import MAX_PRICE_PER_HOUR, ApiInput, normalise_region
from core.contracts.hibernation import (
    DELETE_AFTER_RANGE,
    GPU_THRESHOLD_RANGE,
    HIBERNATE_PAUSED_AFTER_RANGE,
    HOOK_COMMAND_MAX,
    HOOK_TIMEOUT_RANGE,
    PAUSE_AFTER_RANGE,
)
from core.savings import Savings


class AutoHibernationOut(BaseModel):
    enabled: bool
    pause_after_minutes: int
    delete_after_minutes: int
    gpu_usage_threshold: float


class VastInfoOut(BaseModel):
    instance_id: int | str | None = Field(description="The provider's id (a number on vast.ai)")
    gpu_type: str | None = Field(description="None for a CPU machine")
    region: str | None


class SavingsOut(BaseModel):
    hibernated_hours: float
    paused_hours: float
    cost_avoided_usd: float = Field(
        description="GPU hours not billed while hibernated, paused or on the standby"
    )
    disk_cost_usd: float = Field(description="The stopped disk, billed on its host while paused")
    storage_cost_usd: float = Field(description="The snapshots' storage over those hours")
    net_usd: float

    @classmethod
    def of(cls, savings: Savings) -> SavingsOut:
        return cls(
            hibernated_hours=round(savings.hibernated_hours, 6),
            paused_hours=round(savings.paused_hours, 6),
            cost_avoided_usd=round(savings.cost_avoided_usd, 6),
            disk_cost_usd=round(savings.disk_cost_usd, 6),
            storage_cost_usd=round(savings.storage_cost_usd, 6),
            net_usd=round(savings.net_usd, 6),
        )


class InstanceStatusOut(BaseModel):
    """The seed's `GET /api/instances/{id}/status`."""

    instance_id: str = Field(description="The Dumont machine id")
    status: str = Field(description="The machine's state, or `offline` if its agent is silent")
    gpu_utilization: float | None
    last_activity: datetime | None
    auto_hibernation: AutoHibernationOut
    vast_info: VastInfoOut
    idle_since: datetime | None = Field(description="Up and idle since then; null when busy")
    snapshot_id: str | None = Field(description="The snapshot a wake restores")
    savings: SavingsOut


_NOT_NULL = (
    "auto_hibernation_enabled",
    "gpu_usage_threshold",
    "pause_after_minutes",
    "delete_after_minutes",
    "pre_hibernate_timeout_seconds",
    "pre_hibernate_on_failure",
    "hibernate_paused_after_minutes",
)


class ConfigUpdate(ApiInput):
    """`PUT /api/instances/{id}/config`: the fields given change, the others are kept; a
    `null` pre_hibernate_command removes the hook."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    auto_hibernation_enabled: bool | None = None
    gpu_usage_threshold: float | None = Field(
        default=None, ge=GPU_THRESHOLD_RANGE[0], le=GPU_THRESHOLD_RANGE[1], description="Percent"
    )
    pause_after_minutes: int | None = Field(
        default=None, ge=PAUSE_AFTER_RANGE[0], le=PAUSE_AFTER_RANGE[1]
    )
    delete_after_minutes: int | None = Field(
        default=None, ge=DELETE_AFTER_RANGE[0], le=DELETE_AFTER_RANGE[1]
    )
    pre_hibernate_command: str | None = Field(
        default=None, min_length=1, max_length=HOOK_COMMAND_MAX, examples=["python save_ckpt.py"]
    )
    pre_hibernate_timeout_seconds: int | None = Field(
        default=None, ge=HOOK_TIMEOUT_RANGE[0], le=HOOK_TIMEOUT_RANGE[1]
    )
    pre_hibernate_on_failure: Literal["abort", "continue"] | None = None
    hibernate_paused_after_minutes: int | None = Field(
        default=None,
        ge=HIBERNATE_PAUSED_AFTER_RANGE[0],
        le=HIBERNATE_PAUSED_AFTER_RANGE[1],
        description="A machine paused this long is hibernated (its stopped disk bills)",
    )

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; leave it out to keep the current value")
        return value

    @field_validator("pre_hibernate_command")
    @classmethod
    def _command_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank; send null to remove the hook")
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> ConfigUpdate:
        if not self.model_fields_set:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"nothing to change: give at least one of {names}")
        return self

    @property
    def clears_command(self) -> bool:
        return "pre_hibernate_command" in self.model_fields_set and (
            self.pre_hibernate_command is None
        )


class PreHibernateOut(BaseModel):
    command: str | None
    timeout_seconds: int
    on_failure: str


class PauseOut(BaseModel):
    hibernate_after_minutes: int = Field(description="A paused machine is hibernated after this")


class ConfigOut(BaseModel):
    success: bool = True
    instance_id: str
    auto_hibernation: AutoHibernationOut
    pre_hibernate: PreHibernateOut
    pause: PauseOut


class HibernateRequest(ApiInput):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str | None = Field(default=None, max_length=500, description="Recorded with the event")


class HibernateOut(BaseModel):
    success: bool = True
    snapshot_id: str
    instance_destroyed: bool


class WakeRequest(ApiInput):
    """Each field overrides the machine's own for this wake (and the next ones)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    gpu_type: str | None = Field(default=None, min_length=1, max_length=100)
    region: str | None = Field(default=None, description="NA, SA, EU, AS, OC, AF or ISO country")
    max_price: float | None = Field(
        default=None, gt=0, le=MAX_PRICE_PER_HOUR, description="USD per hour"
    )

    _region = field_validator("region")(normalise_region)

    @field_validator("gpu_type")
    @classmethod
    def _gpu_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None


class WakeOut(BaseModel):
    success: bool = True
    instance_id: str = Field(description="The Dumont machine id (it stays the same)")
    vast_instance_id: int | str = Field(description="The new provider instance")
    ssh_host: str | None
    ssh_port: int | None
    ssh_user: str = Field(default="root", description="Who to log in as over SSH")
    time_taken: float = Field(description="Seconds from the wake request to running")


class InstanceEventOut(BaseModel):
    # A string, not `EventType`: the seed's documents name types of their own.
    event_type: str
    timestamp: datetime
    gpu_utilization: float | None
    snapshot_id: str | None
    reason: str | None


class InstanceEventsOut(BaseModel):
    events: list[InstanceEventOut]


class HibernationStatsOut(BaseModel):
    total_instances: int = Field(description="Your machines that are not destroyed")
    running: int
    idle: int
    hibernated: int
    deleted: int
    paused: int
    savings_usd: float = Field(description="Net savings of all of them")
