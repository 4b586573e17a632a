"""Request and response bodies of the HTTP API (pydantic; the only place HTTP shapes live)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import asyncssh
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from core.contracts.hibernation import (
    DELETE_AFTER_RANGE,
    GPU_THRESHOLD_RANGE,
    HOOK_COMMAND_MAX,
    HOOK_TIMEOUT_RANGE,
    PAUSE_AFTER_RANGE,
)
from core.contracts.states import MachineState
from core.metrics.liveness import offline_after
from core.regions import countries_for
from core.savings import Savings

SortKey = Literal["price", "reliability", "vram", "score"]


def normalise_region(value: str | None) -> str | None:
    """A region code or ISO country code, upper-cased; ValueError names the valid codes."""
    if value is None:
        return None
    countries_for(value)
    return value.strip().upper()


class MachineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gpu_name: str = Field(min_length=1, max_length=100, examples=["RTX 4090"])
    num_gpus: int = Field(default=1, ge=1, le=8)
    image: str = Field(min_length=1, max_length=1024, examples=["pytorch/pytorch:latest"])
    disk_gb: int = Field(default=50, ge=10, le=2048)
    region: str | None = Field(default=None, description="NA, SA, EU, AS, OC, AF or ISO country")
    max_price: float | None = Field(default=None, gt=0, description="USD per hour")
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    min_vram_gb: float | None = Field(default=None, ge=0)
    name: str | None = Field(default=None, min_length=1, max_length=200)

    _region = field_validator("region")(normalise_region)


class MachineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    status: MachineState
    status_reason: str | None
    gpu_name: str | None
    num_gpus: int
    image: str
    disk_gb: int
    region: str | None
    price_per_hour: float | None
    geolocation: str | None
    instance_id: str | None
    ssh_host: str | None
    ssh_port: int | None
    created_at: datetime
    updated_at: datetime
    # The agent's latest report.
    gpu_utilization: float | None = None
    last_report_at: datetime | None = None
    last_activity: datetime | None = None
    report_interval_seconds: int | None = None
    # What auto-hibernation saved on this machine so far (net of snapshot storage), USD.
    savings_usd: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def online(self) -> bool:
        """The agent reported within its last three intervals."""
        if self.last_report_at is None:
            return False
        age = datetime.now(UTC) - self.last_report_at
        return age <= offline_after(self.report_interval_seconds)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ssh(self) -> str | None:
        """The command that logs in, once the machine has an address."""
        if self.ssh_host is None or self.ssh_port is None:
            return None
        return f"ssh -p {self.ssh_port} root@{self.ssh_host}"


class ActionAccepted(BaseModel):
    """Answer to an action sent with `?wait=false`: the machine accepted it; poll `status_url`
    (the machine) to see it progress."""

    machine_id: str
    action: str
    status_url: str


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    machine_id: str
    event_type: str
    state: str | None
    reason: str | None
    data: dict[str, Any]
    timestamp: datetime


class OfferFilters(BaseModel):
    """Query string of `GET /api/v1/offers`."""

    model_config = ConfigDict(extra="forbid")

    gpu: str | None = Field(default=None, min_length=1, max_length=100)
    num_gpus: int | None = Field(default=None, ge=1, le=8)
    max_price: float | None = Field(default=None, gt=0)
    region: str | None = None
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    min_vram_gb: float | None = Field(default=None, ge=0)
    disk_gb: int | None = Field(default=None, ge=1, le=2048)
    sort: SortKey = "price"
    limit: int = Field(default=50, ge=1, le=500)

    _region = field_validator("region")(normalise_region)


class OfferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    offer_id: str
    provider: str
    gpu_name: str
    num_gpus: int
    gpu_ram_gb: float
    price_per_hour: float
    reliability: float
    geolocation: str
    country: str
    disk_space_gb: float
    cpu_cores: float
    cpu_ram_gb: float
    inet_down_mbps: float
    inet_up_mbps: float


class SshKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(
        min_length=1, max_length=16384, examples=["ssh-ed25519 AAAA... me@host"]
    )

    @field_validator("public_key")
    @classmethod
    def _one_openssh_public_key(cls, value: str) -> str:
        """Stored in OpenSSH one-line form; a pasted private key is refused, never stored."""
        text = value.strip()
        if "PRIVATE KEY" in text:
            raise ValueError("this is a private key: paste the public key (the .pub file)")
        if "\n" in text:
            raise ValueError("one public key per request")
        try:
            key = asyncssh.import_public_key(text)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ValueError(f"not an OpenSSH public key: {exc}") from None
        return key.export_public_key().decode().strip()


class SshKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    public_key: str
    fingerprint: str
    created_at: datetime


class ErrorOut(BaseModel):
    detail: str


class ValidationErrorOut(BaseModel):
    detail: list[dict[str, Any]]
    message: str


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
    cost_avoided_usd: float = Field(description="GPU hours not billed while hibernated")
    storage_cost_usd: float = Field(description="The snapshots' storage over those hours")
    net_usd: float

    @classmethod
    def of(cls, savings: Savings) -> SavingsOut:
        return cls(
            hibernated_hours=round(savings.hibernated_hours, 6),
            cost_avoided_usd=round(savings.cost_avoided_usd, 6),
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


# --- auto-hibernation (api/routes/instances.py, api/routes/hibernation.py) -----------------

_NOT_NULL = (
    "auto_hibernation_enabled",
    "gpu_usage_threshold",
    "pause_after_minutes",
    "delete_after_minutes",
    "pre_hibernate_timeout_seconds",
    "pre_hibernate_on_failure",
)


class ConfigUpdate(BaseModel):
    """`PUT /api/instances/{id}/config`: the fields given change, the others are kept; a
    `null` pre_hibernate_command removes the hook."""

    model_config = ConfigDict(extra="forbid", strict=True)

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


class ConfigOut(BaseModel):
    success: bool = True
    instance_id: str
    auto_hibernation: AutoHibernationOut
    pre_hibernate: PreHibernateOut


class HibernateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str | None = Field(default=None, max_length=500, description="Recorded with the event")


class HibernateOut(BaseModel):
    success: bool = True
    snapshot_id: str
    instance_destroyed: bool


class WakeRequest(BaseModel):
    """Each field overrides the machine's own for this wake (and the next ones)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    gpu_type: str | None = Field(default=None, min_length=1, max_length=100)
    region: str | None = Field(default=None, description="NA, SA, EU, AS, OC, AF or ISO country")
    max_price: float | None = Field(default=None, gt=0, description="USD per hour")

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
    time_taken: float = Field(description="Seconds from the wake request to running")


class InstanceEventOut(BaseModel):
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
    savings_usd: float = Field(description="Net savings of all of them")


class SnapshotOut(BaseModel):
    id: str
    created_at: datetime
    committed_at: datetime | None
    files: int
    size_bytes: int = Field(description="The workspace's size")
    stored_bytes: int = Field(description="Compressed pack bytes it references")
    uploaded_bytes: int = Field(description="New bytes it put in the store")
    root_hash: str | None
    cost_per_month_usd: float


class ProgressOut(BaseModel):
    """The snapshot or restore a machine has in flight (none: operation null)."""

    state: str
    operation: Literal["snapshot", "restore"] | None
    phase: str | None
    files: int = 0
    bytes_scanned: int = 0
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0


class MetricsOut(BaseModel):
    machine_id: str
    range: str
    step_seconds: int
    series: dict[str, list[tuple[datetime, float | None, float | None]]] = Field(
        description="Per series, `[bucket start, average, maximum]` oldest first; null where "
        "the bucket holds no sample"
    )
