"""What goes in and out of a provider: offer searches, offers, creates and instances.

Each carries `provider_data`: fields only its provider reads (a GCE zone and machine type), so
these shapes stay provider-neutral (dstack's `backend_data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.contracts.machine import MachineKind
from core.contracts.states import InstanceStatus

SortKey = Literal["price", "reliability", "vram", "score"]


@dataclass
class OfferQuery:
    kind: MachineKind = MachineKind.GPU
    gpu_name: str | None = None  # None: any GPU (and always None for a CPU machine)
    num_gpus: int | None = None
    max_price: float | None = None
    region: str | None = None  # a region code (NA, EU, AS, SA, OC, AF) or an ISO country code
    min_reliability: float | None = None
    min_vram_gb: float | None = None
    min_disk_gb: float | None = None
    sort: SortKey = "price"
    limit: int = 50
    # Interruptible (bid) offers, priced at their minimum bid; with `bid_price`, only those
    # whose minimum bid it meets. A provider without them ignores both.
    interruptible: bool = False
    bid_price: float | None = None
    provider_data: dict[str, str] = field(default_factory=dict)


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
    provider_data: dict[str, str] = field(default_factory=dict)


@dataclass
class CreateRequest:
    offer_id: str
    image: str
    disk_gb: int
    label: str
    env: dict[str, str] = field(default_factory=dict)
    # Container ports to publish, "8000/tcp" or "53/udp" (core/contracts/service.py).
    ports: list[str] = field(default_factory=list)
    # The provider's own boot command. Dumont's on-start does not use it: it runs before a
    # wake's restore, on an empty disk (the workflow runs the on-start itself instead).
    onstart: str | None = None
    # Public keys for a provider that puts them on the instance at creation (GCE metadata); a
    # provider with an account or per-instance key API gets them that way instead.
    ssh_keys: list[str] = field(default_factory=list)
    # An interruptible instance at `bid_price` USD/h (None: the offer's minimum bid).
    interruptible: bool = False
    bid_price: float | None = None
    # The chosen offer's `provider_data` (where and what to create).
    provider_data: dict[str, str] = field(default_factory=dict)


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
    # The login user the instance accepts Dumont's key for: root on vast's containers; the
    # user named in the instance's `ssh-keys` metadata (passwordless sudo) on GCE.
    ssh_user: str = "root"
    provider_data: dict[str, str] = field(default_factory=dict)
    # Each published container port ("8000/tcp") -> its public address ("203.0.113.7:41234");
    # SSH's port not included. Empty until the instance runs.
    ports: dict[str, str] = field(default_factory=dict)
    # What the instance costs per hour while stopped (its disk); None when not known.
    disk_price_per_hour: float | None = None
    # The provider took it away (a spot VM preempted), as opposed to a stop Dumont asked for.
    interrupted: bool = False
    # Its label carries this installation's id (not a label from before installations were
    # marked, which another installation on the account may also read as its own): only such
    # an instance is ever destroyed as an orphan.
    installation_marked: bool = False
