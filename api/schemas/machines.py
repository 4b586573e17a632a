"""`/api/v1/machines`: what a user asks for, a machine as shown, and its events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
)
from pydantic_core import PydanticCustomError

from api.schemas.common import MAX_PRICE_PER_HOUR, MAX_VRAM_GB, ApiInput, normalise_region
from core.contracts.events import EventType
from core.contracts.machine import MachineKind
from core.contracts.states import MachineState
from core.metrics.liveness import offline_after

# Fields about the GPU: a cpu machine has none of them.
GPU_FIELDS = ("gpu_name", "num_gpus", "min_vram_gb")


class MachineCreate(ApiInput):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # First: the fields after it are checked against it.
    kind: MachineKind = Field(default=MachineKind.GPU, description="`cpu`: a machine with no GPU")
    gpu_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        examples=["RTX 4090"],
        description="Required for a gpu machine; not given for a cpu one",
        validate_default=True,
    )
    num_gpus: int | None = Field(
        default=None,
        ge=1,
        le=8,
        description="1 unless given, for a gpu machine; not given for a cpu one",
        validate_default=True,
    )
    image: str = Field(min_length=1, max_length=1024, examples=["pytorch/pytorch:latest"])
    disk_gb: int = Field(default=50, ge=10, le=2048)
    region: str | None = Field(default=None, description="NA, SA, EU, AS, OC, AF or ISO country")
    max_price: float | None = Field(
        default=None, gt=0, le=MAX_PRICE_PER_HOUR, description="USD per hour"
    )
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    min_vram_gb: float | None = Field(
        default=None, ge=0, le=MAX_VRAM_GB, description="Not for a cpu machine"
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)

    _region = field_validator("region")(normalise_region)

    @field_validator(*GPU_FIELDS)
    @classmethod
    def _fits_kind(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("kind")  # absent when the kind itself was invalid
        if kind is MachineKind.CPU and value is not None:
            raise ValueError("a cpu machine has no GPU: leave it out")
        if kind is MachineKind.GPU and value is None:
            if info.field_name == "gpu_name":
                raise PydanticCustomError("missing", "Field required")
            if info.field_name == "num_gpus":
                return 1
        return value


class MachineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    kind: MachineKind
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


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    machine_id: str
    event_type: EventType
    state: MachineState | None
    reason: str | None
    data: dict[str, Any]
    timestamp: datetime
