"""Request and response bodies of the HTTP API (pydantic; the only place HTTP shapes live)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import asyncssh
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from core.metrics.liveness import offline_after
from core.regions import countries_for
from core.types import MachineState

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
    gpu_name: str
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
    gpu_type: str
    region: str | None


class InstanceStatusOut(BaseModel):
    """The seed's `GET /api/instances/{id}/status`."""

    instance_id: str = Field(description="The Dumont machine id")
    status: str = Field(description="The machine's state, or `offline` if its agent is silent")
    gpu_utilization: float | None
    last_activity: datetime | None
    auto_hibernation: AutoHibernationOut
    vast_info: VastInfoOut


class MetricsOut(BaseModel):
    machine_id: str
    range: str
    step_seconds: int
    series: dict[str, list[tuple[datetime, float | None, float | None]]] = Field(
        description="Per series, `[bucket start, average, maximum]` oldest first; null where "
        "the bucket holds no sample"
    )
