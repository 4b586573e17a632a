"""The one interface every cloud provider implements, and its typed errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from core.contracts.states import InstanceStatus

SortKey = Literal["price", "reliability", "vram", "score"]


@dataclass
class OfferQuery:
    gpu_name: str | None = None
    num_gpus: int | None = None
    max_price: float | None = None
    region: str | None = None  # a region code (NA, EU, AS, SA, OC, AF) or an ISO country code
    min_reliability: float | None = None
    min_vram_gb: float | None = None
    min_disk_gb: float | None = None
    sort: SortKey = "price"
    limit: int = 50


@dataclass
class Offer:
    offer_id: str
    provider: str
    gpu_name: str
    num_gpus: int
    gpu_ram_gb: float
    price_per_hour: float  # total price including the requested disk
    reliability: float
    geolocation: str  # "City, CC"
    country: str  # ISO 3166 alpha-2
    disk_space_gb: float
    cpu_cores: float
    cpu_ram_gb: float
    inet_down_mbps: float = 0.0
    inet_up_mbps: float = 0.0


@dataclass
class CreateRequest:
    offer_id: str
    image: str
    disk_gb: int
    label: str
    env: dict[str, str] = field(default_factory=dict)
    onstart: str | None = None


@dataclass
class ProviderInstance:
    instance_id: str
    label: str | None
    status: InstanceStatus
    raw_status: str | None
    gpu_name: str
    num_gpus: int
    price_per_hour: float
    geolocation: str | None
    ssh_host: str | None
    ssh_port: int | None
    status_msg: str | None = None


class ProviderError(Exception):
    """A provider call failed; `retryable` says whether trying again may help."""

    retryable: bool = True

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class OfferUnavailable(ProviderError):
    """The offer was rented by someone else between search and create."""

    retryable = False


class InstanceNotFound(ProviderError):
    retryable = False


class RateLimited(ProviderError):
    def __init__(
        self, message: str, *, status_code: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class AuthError(ProviderError):
    retryable = False


class InvalidRequest(ProviderError):
    retryable = False


@runtime_checkable
class Provider(Protocol):
    """Every mutating call is idempotent: labels make creates findable, destroy of a gone
    instance succeeds."""

    name: str

    async def search_offers(self, query: OfferQuery) -> list[Offer]: ...

    async def create_instance(self, request: CreateRequest) -> ProviderInstance: ...

    async def find_by_label(self, label_prefix: str) -> list[ProviderInstance]: ...

    async def get_instance(self, instance_id: str) -> ProviderInstance | None: ...

    async def start_instance(self, instance_id: str) -> None: ...

    async def stop_instance(self, instance_id: str) -> None: ...

    async def reboot_instance(self, instance_id: str) -> None: ...

    async def destroy_instance(self, instance_id: str) -> None: ...

    async def attach_ssh_key(self, instance_id: str, public_key: str) -> None: ...

    async def ensure_account_ssh_key(self, public_key: str) -> None: ...

    async def aclose(self) -> None: ...
