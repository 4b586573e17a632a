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
from api.schemas.provider_choice import ProviderChoice, check_gcp_image, on_gcp
from api.schemas.standby import StandbyConfigUpdate, StandbySummary
from core.contracts.bid import MAX_BID_PER_HOUR, check_bid_price, check_interruptible
from core.contracts.events import EventType
from core.contracts.machine import MachineKind
from core.contracts.service import (
    MAX_ON_START_BYTES,
    MAX_PORTS,
    ON_START_LOG,
    check_env,
    check_on_start,
    parse_ports,
)
from core.contracts.states import MachineState
from core.metrics.liveness import offline_after
from core.savings import Savings

# Fields about the GPU: a cpu machine has none of them.
GPU_FIELDS = ("gpu_name", "num_gpus", "min_vram_gb")
# Who a machine recorded before `ssh_user` existed logs in as (vast's containers: root).
DEFAULT_SSH_USER = "root"


class MachineCreate(ProviderChoice, ApiInput):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # First after the provider's (ProviderChoice): the fields after it are checked against it.
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
    # After the provider's fields, `bid_price` after `interruptible`: each is checked against
    # those before it.
    interruptible: bool = Field(
        default=False,
        description="vast only: an interruptible (bid) instance, cheaper than on-demand; vast.ai"
        " stops it when outbid (GCP's counterpart is `spot`)",
    )
    bid_price: float | None = Field(
        default=None,
        gt=0,
        le=MAX_BID_PER_HOUR,
        examples=[0.35],
        description="With `interruptible`: the bid, USD per hour (only offers whose minimum bid"
        " it meets are rented); left out: each offer's minimum bid",
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    # A service: published ports, its environment, and a command run after every boot.
    ports: list[int | str] = Field(
        default_factory=list,
        max_length=MAX_PORTS,
        examples=[[8000, "53/udp"]],
        description="Container ports to publish: 8000, '8000/tcp' or '53/udp' (not 22, SSH's);"
        " each one's public address shows in the machine's `ports` once it is up",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        examples=[{"MODEL": "llama-3-8b"}],
        description="Environment variables for the machine's processes and its on-start."
        " Values go to the machine only (through its workflow): never into Dumont's database"
        " nor any answer",
    )
    on_start: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ON_START_BYTES,
        examples=["python3 -m http.server 8000"],
        description=f"A shell command run after every boot (create, start, restart, wake), once"
        f" the workspace is in place; detached, from /workspace, output in {ON_START_LOG}."
        f" At most {MAX_ON_START_BYTES} bytes",
    )

    standby: StandbyConfigUpdate | None = Field(
        default=None,
        description="A CPU standby the workspace is synced to, taking over when the GPU is lost:"
        " the fields given over your defaults (`/api/v1/settings/standby`), enabled unless"
        " `enabled` is false; left out: a standby only if your defaults' `auto_standby` is on",
    )

    _region = field_validator("region")(normalise_region)

    @field_validator("interruptible")
    @classmethod
    def _interruptible(cls, value: bool, info: ValidationInfo) -> bool:
        provider = info.data.get("provider")  # absent when the provider was invalid
        if provider is not None:
            check_interruptible(provider, value)
        return value

    @field_validator("bid_price")
    @classmethod
    def _bid_price(cls, value: float | None, info: ValidationInfo) -> float | None:
        if "interruptible" in info.data:  # absent when it was invalid: said there
            check_bid_price(info.data["interruptible"], value)
        return value

    @field_validator("ports", mode="before")
    @classmethod
    def _ports(cls, value: object, info: ValidationInfo) -> object:
        if value and on_gcp(info):
            raise ValueError("GCP machines do not publish ports yet")
        # Before pydantic's coercion, which would take `true` for port 1 and 8000.5 for 8000.
        return parse_ports(value) if isinstance(value, list) else value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if value and on_gcp(info):
            raise ValueError("GCP machines do not take environment variables yet")
        check_env(value)
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str, info: ValidationInfo) -> str:
        if on_gcp(info):
            check_gcp_image(value)
        return value

    @field_validator("on_start")
    @classmethod
    def _on_start(cls, value: str | None) -> str | None:
        if value is not None:
            check_on_start(value)
        return value

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


class MachineSavingsOut(BaseModel):
    """`savings_usd`'s parts (core/savings.py says the rule)."""

    hibernated_hours: float = 0.0
    paused_hours: float = 0.0
    standby_hours: float = Field(default=0.0, description="On the CPU standby, the GPU released")
    cost_avoided_usd: float = Field(
        default=0.0, description="GPU hours not billed while hibernated, paused or on standby"
    )
    disk_cost_usd: float = Field(default=0.0, description="The stopped disk while paused")
    storage_cost_usd: float = Field(
        default=0.0, description="The snapshots' storage over the hibernated and paused hours"
    )
    net_usd: float = 0.0

    @classmethod
    def of(cls, savings: Savings) -> MachineSavingsOut:
        return cls(
            hibernated_hours=round(savings.hibernated_hours, 6),
            paused_hours=round(savings.paused_hours, 6),
            standby_hours=round(savings.standby_hours, 6),
            cost_avoided_usd=round(savings.cost_avoided_usd, 6),
            disk_cost_usd=round(savings.disk_cost_usd, 6),
            storage_cost_usd=round(savings.storage_cost_usd, 6),
            net_usd=round(savings.net_usd, 6),
        )


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
    provider: str = "vast"
    machine_type: str | None = None
    zone: str | None = None
    spot: bool = False
    interruptible: bool = False
    bid_price: float | None = None
    price_per_hour: float | None
    geolocation: str | None
    instance_id: str | None
    ssh_host: str | None
    ssh_port: int | None
    # Who `ssh` logs in as: root on vast, the instance's metadata user on GCE (null while the
    # machine has no address).
    ssh_user: str | None = None
    created_at: datetime
    updated_at: datetime
    # The agent's latest report.
    gpu_utilization: float | None = None
    last_report_at: datetime | None = None
    last_activity: datetime | None = None
    report_interval_seconds: int | None = None
    # What auto-hibernation and the standby saved on this machine so far (net of snapshot
    # storage), USD, and its parts.
    savings_usd: float = 0.0
    savings: MachineSavingsOut = Field(default_factory=MachineSavingsOut)
    # What it costs per hour now (the GPU, or its disk while stopped or paused; the standby;
    # the snapshots' storage while hibernated or paused) and has cost so far, USD. `price_per_hour`
    # stays the serving instance's own price.
    cost_per_hour_usd: float = 0.0
    cost_usd: float = 0.0
    # In serverless mode: paused when idle, resumed by a request to its gateway URL.
    serverless: bool = False
    # The CPU standby (null when the machine has none): where the workspace is synced to.
    standby: StandbySummary | None = None
    # The service as declared (env values are never stored, so never shown).
    env_names: list[str] = Field(default_factory=list)
    on_start: str | None = None
    # The row's declared ports and the addresses the instance published, shown as `ports`.
    declared_ports: list[str] = Field(default_factory=list, exclude=True)
    published_ports: dict[str, str | None] = Field(
        default_factory=dict, validation_alias="ports", exclude=True
    )

    @field_validator("env_names", "declared_ports", "published_ports", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object, info: ValidationInfo) -> object:
        # Rows from before services hold NULL.
        if value is None:
            return {} if info.field_name == "published_ports" else []
        return value

    @field_validator("ssh_user", mode="after")
    @classmethod
    def _root_when_unrecorded(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Rows from before the column hold NULL next to an address: those were root logins.
        if value is None and info.data.get("ssh_host") is not None:
            return DEFAULT_SSH_USER
        return value

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
        return f"ssh -p {self.ssh_port} {self.ssh_user or DEFAULT_SSH_USER}@{self.ssh_host}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ports(self) -> dict[str, str | None]:
        """Each declared port ("8000/tcp") and its public address ("203.0.113.7:41234") while
        the machine is up; null until the instance publishes it, and while it is not up."""
        up = self.status.is_up()
        return {p: self.published_ports.get(p) if up else None for p in self.declared_ports}


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    machine_id: str
    event_type: EventType
    state: MachineState | None
    reason: str | None
    data: dict[str, Any]
    timestamp: datetime
