"""The machine workflow's own contracts: what the user asked for, the instance behind it, the
workflow's whole carried state, and the lifecycle actions' messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.contracts.states import MachineState


class MachineKind(StrEnum):
    GPU = "gpu"
    CPU = "cpu"  # no GPU: a CPU VM (a failover standby, or a CPU job)


@dataclass(kw_only=True)
class MachineSpec:
    """What the user asked for. Offers are matched against it on every provision."""

    image: str
    disk_gb: int
    kind: MachineKind = MachineKind.GPU
    # Required for a GPU machine; None for a CPU one.
    gpu_name: str | None = None
    num_gpus: int = 1
    region: str | None = None
    max_price: float | None = None
    min_reliability: float | None = None
    min_vram_gb: float | None = None
    provider: str = "vast"
    # A provider with a machine-type catalogue (GCP): which type, which zone (None: any, the
    # cheapest first; a stockout moves on), and Spot (preemptible, cheaper) or on-demand.
    machine_type: str | None = None
    zone: str | None = None
    spot: bool = False
    # A marketplace's interruptible (bid) instance (vast.ai): cheaper, and stopped by the host
    # when outbid. `bid_price` is the bid in USD per hour; None bids each offer's minimum.
    # Checked by core/contracts/bid.py.
    interruptible: bool = False
    bid_price: float | None = None
    # A service on the machine: container ports to publish ("8000/tcp"), environment variables
    # for its processes, and a command Dumont runs after every boot (create, start, resume,
    # wake) once the workspace is in place. Limits are in core/contracts/service.py.
    ports: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    on_start: str | None = None


@dataclass(kw_only=True)
class InstanceInfo:
    """The provider instance currently backing a machine."""

    provider: str
    instance_id: str
    label: str
    offer_id: str
    gpu_name: str
    num_gpus: int
    price_per_hour: float
    geolocation: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    # Who Dumont logs in as (the provider's `ProviderInstance.ssh_user`); the default keeps
    # payloads recorded before the field existed decoding as the root logins they were.
    ssh_user: str = "root"
    # Provider-specific fields (a GCE zone and machine type), opaque to everyone but the
    # provider that wrote them.
    provider_data: dict[str, str] = field(default_factory=dict)
    # What the instance's provider cannot do (`ProviderFeature` value -> why, in words for the
    # user): the workflow's validators refuse those actions with the reason.
    unsupported: dict[str, str] = field(default_factory=dict)
    # Each published container port ("8000/tcp") -> its public address ("203.0.113.7:41234").
    ports: dict[str, str] = field(default_factory=dict)
    # What the instance costs per hour while stopped (its disk); None when the provider does
    # not say.
    disk_price_per_hour: float | None = None


@dataclass(kw_only=True)
class LifecyclePolicy:
    """The worker's lifecycle settings, read once per machine and carried in its snapshot so a
    replay or continue-as-new never sees different numbers."""

    boot_timeout_seconds: int = 900
    provision_attempts: int = 3
    # How often the workflow re-checks a machine that is not up yet (the wait activity itself
    # waits until the boot deadline, so in production this is rarely reached).
    boot_poll_seconds: int = 15
    # How soon a dead worker is noticed in a long activity (boot waits, creates, destroys).
    heartbeat_timeout_seconds: int = 30
    # The agent's report interval: no first report within three of them after an install
    # counts as offline.
    agent_interval_seconds: int = 30
    # Re-installs of an agent that went offline are at least this far apart.
    agent_reinstall_seconds: int = 300
    # After a boot or a wake, setup time: idleness counts only from then on.
    idle_grace_seconds: int = 120
    # A snapshot is tried this often (the store or the machine may hiccup) before the
    # hibernate gives up and the machine keeps running.
    snapshot_attempts: int = 4
    snapshot_retry_seconds: int = 10
    # An automatic hibernate that failed is tried again this much later.
    auto_hibernate_retry_seconds: int = 600
    # A wake that finds no matching offer searches again this often, this far apart.
    wake_offer_attempts: int = 3
    wake_offer_retry_seconds: int = 30
    # A resume waits this long for the instance to start on its own host before it gives up
    # on the host and wakes the pause's snapshot on a new offer.
    resume_same_host_seconds: int = 60


@dataclass(kw_only=True)
class ActionInput:
    """Input of the stop/start/restart/destroy updates."""

    reason: str | None = None


@dataclass(kw_only=True)
class ActionResult:
    machine_id: str
    state: MachineState
    instance_id: str | None = None


@dataclass(kw_only=True)
class SshKeysChanged:
    """Signal `ssh_keys_changed`: the owner's keys changed; a running machine gets them attached."""

    fingerprint: str | None = None
