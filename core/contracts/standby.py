"""GPU → CPU failover: the standby's config and its rules (shared by the workflow's validators,
the API's 422s and the CLI), the carried status, the sync's health as the agent reports it,
the messages of configure, migrate and a provider event, and the standby activities' inputs
and results.

The sync itself runs in the agent on the GPU machine (agent/sync.py): every interval it pushes
the workspace to the standby with rsync over SSH, with a key made on the GPU machine whose
public half the standby accepts only for `rrsync` into its workspace. The workflow hears only
of the sync's transitions (healthy <-> failing), never of each sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.contracts.machine import InstanceInfo
from core.contracts.states import InstanceStatus, MachineState

STANDBY_PROVIDERS = ("gcp", "vast")
DEFAULT_STANDBY_MACHINE_TYPE = "e2-medium"
DEFAULT_STANDBY_DISK_GB = 100
DEFAULT_SYNC_INTERVAL_SECONDS = 30
DEFAULT_IDLE_MIGRATE_MINUTES = 10
MIN_SYNC_INTERVAL_SECONDS = 5
MAX_SYNC_INTERVAL_SECONDS = 3600
MAX_EXCLUDES = 64
MAX_EXCLUDE_LENGTH = 256
# Where the workspace lives on both ends, and the image a GCE standby boots.
STANDBY_WORKSPACE = "/workspace"
STANDBY_IMAGE = "debian-12"


class Side(StrEnum):
    """Which machine serves the workspace now."""

    GPU = "gpu"
    CPU = "cpu"


class StandbyReason(StrEnum):
    """Why the machine is on its standby."""

    GPU_LOST = "gpu_lost"  # the GPU instance was lost: a new one is being looked for
    IDLE = "idle"  # idle past `idle_migrate_minutes`: back to a GPU only when asked
    REQUESTED = "requested"  # `migrate to cpu`: back only when asked


class SyncHealth(StrEnum):
    UNKNOWN = "unknown"  # no sync reported yet since the link
    HEALTHY = "healthy"
    FAILING = "failing"


@dataclass(kw_only=True)
class StandbyConfig:
    """A machine's standby settings (the owner's `auto_standby` defaults fill a new machine's).
    Limits are in `standby_config_problem`."""

    enabled: bool = False
    provider: str = "gcp"
    # GCP: the machine type and zone (None: the cheapest zone nearest the GPU's region).
    machine_type: str | None = DEFAULT_STANDBY_MACHINE_TYPE
    zone: str | None = None
    spot: bool = True
    disk_gb: int = DEFAULT_STANDBY_DISK_GB
    # vast: the most a CPU offer may cost per hour (None: any).
    max_price: float | None = None
    sync_interval_seconds: int = DEFAULT_SYNC_INTERVAL_SECONDS
    # rsync --exclude patterns, relative to the workspace.
    excludes: list[str] = field(default_factory=list)
    # An idle machine moves to its standby after this long (instead of hibernating).
    auto_migrate: bool = True
    idle_migrate_minutes: int = DEFAULT_IDLE_MIGRATE_MINUTES


def standby_config_problem(config: StandbyConfig) -> tuple[str, str] | None:
    """(field, why) for the first bad field, or None: the API answers 422 naming the field and
    the workflow's validator refuses the update, both with these words."""
    if config.provider not in STANDBY_PROVIDERS:
        return "provider", f"must be one of {', '.join(STANDBY_PROVIDERS)}"
    if config.provider == "vast":
        # The vast provider rents GPU machines only (ProviderFeature.CPU_MACHINES): a vast
        # standby would fail at every try. Refused until it rents CPU offers.
        return "provider", "vast.ai CPU offers are not supported yet; use gcp"
    if config.machine_type is not None and not _is_name(config.machine_type):
        return "machine_type", "must be a GCE machine type such as e2-medium"
    if config.zone is not None and not _is_name(config.zone):
        return "zone", "must be a GCE zone such as europe-west1-b"
    if not 10 <= config.disk_gb <= 65536:
        return "disk_gb", "must be between 10 and 65536"
    if config.max_price is not None and not 0 < config.max_price <= 100:
        return "max_price", "must be above 0 and at most 100 ($/h)"
    interval = config.sync_interval_seconds
    if not MIN_SYNC_INTERVAL_SECONDS <= interval <= MAX_SYNC_INTERVAL_SECONDS:
        return (
            "sync_interval_seconds",
            f"must be between {MIN_SYNC_INTERVAL_SECONDS} and {MAX_SYNC_INTERVAL_SECONDS}",
        )
    if len(config.excludes) > MAX_EXCLUDES:
        return "excludes", f"at most {MAX_EXCLUDES} patterns"
    for pattern in config.excludes:
        if not pattern or len(pattern) > MAX_EXCLUDE_LENGTH:
            return "excludes", f"each pattern must be 1 to {MAX_EXCLUDE_LENGTH} characters"
        if any(ch in pattern for ch in "\n\r\0") or pattern.startswith("-"):
            return "excludes", f"{pattern!r} is not a file pattern"
    if not 1 <= config.idle_migrate_minutes <= 7 * 24 * 60:
        return "idle_migrate_minutes", "must be between 1 and 10080"
    return None


def _is_name(value: str) -> bool:
    return 0 < len(value) <= 63 and all(ch.isalnum() or ch == "-" for ch in value)


@dataclass(kw_only=True)
class StandbyStatus:
    """The standby as the workflow knows it; carried in `MachineSnapshot.standby`. Deadlines
    are absolute so that a continue-as-new or a worker restart keeps them."""

    config: StandbyConfig = field(default_factory=StandbyConfig)
    instance: InstanceInfo | None = None
    # Attempts at creating a standby: its label is `standby_label(machine_id, attempt)`.
    attempt: int = 0
    side: Side = Side.GPU
    reason: StandbyReason | None = None
    # The GPU instance the sync is set up from (None: not linked yet).
    linked_instance_id: str | None = None
    health: SyncHealth = SyncHealth.UNKNOWN
    # The newest completed sync the agent reported in a transition (the heartbeats have each).
    last_sync_at: datetime | None = None
    sync_error: str | None = None
    # Why the standby is not there or not linked, in words for the user; None when it is.
    problem: str | None = None
    # When a missing or unlinked standby is tried again.
    retry_at: datetime | None = None
    retries: int = 0
    # On standby after a GPU loss: when the next search for a GPU runs.
    hunt_at: datetime | None = None
    hunts: int = 0
    # When the machine last moved onto its standby.
    moved_at: datetime | None = None


def standby_label(machine_id: str, attempt: int) -> str:
    """Not a machine label (`dumont-{id}-{n}`): a destroy of the machine's GPU instances and
    the reconciler's machine rule leave it alone; the standby's own rule judges it."""
    return f"dumont-{machine_id}-sb{attempt}"


def standby_label_prefix(machine_id: str) -> str:
    return f"dumont-{machine_id}-sb"


def machine_of_standby_label(label: str | None) -> str | None:
    """`dumont-{machine_id}-sb{n}` -> machine_id; None for any other label."""
    if label is None or not label.startswith("dumont-"):
        return None
    machine_id, dash, rest = label[len("dumont-") :].rpartition("-")
    if dash and machine_id and rest.startswith("sb") and rest[2:].isdigit():
        return machine_id
    return None


# --- messages ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class SyncReport:
    """Signal `standby_sync`: sent by the API on a transition of the sync's health only."""

    health: SyncHealth
    at: datetime
    # The GPU instance whose agent reported (a late report of a lost GPU is ignored).
    instance_id: str | None = None
    last_success_at: datetime | None = None
    error: str | None = None


@dataclass(kw_only=True)
class ProviderEvent:
    """Signal `provider_event`: the provider says the instance is gone, failed, or stopped
    under the user (an outbid interruptible, a spot preemption). From the fleet reconciler,
    or from the workflow's own check when the agent went silent."""

    instance_id: str
    status: InstanceStatus
    at: datetime
    interrupted: bool = False
    detail: str | None = None


@dataclass(kw_only=True)
class StandbyConfigInput:
    """Update `configure_standby`: the whole new config (`enabled=False` removes the standby)."""

    config: StandbyConfig
    reason: str | None = None


@dataclass(kw_only=True)
class StandbyView:
    machine_id: str
    state: MachineState
    standby: StandbyStatus


@dataclass(kw_only=True)
class MigrateInput:
    """Update `migrate`: to the standby (a final sync, then the GPU released) or back to a GPU
    (a new one rented, the workspace restored from the standby)."""

    to: Side
    reason: str | None = None


@dataclass(kw_only=True)
class MigrateResult:
    machine_id: str
    state: MachineState
    side: Side
    instance: InstanceInfo | None = None


# --- activities -------------------------------------------------------------------------


@dataclass(kw_only=True)
class LinkStandbyInput:
    """Set up the sync GPU -> standby: rsync on both ends (installed where missing), a key made
    on the GPU machine and accepted by the standby only for `rrsync` into its workspace, the
    workspace on the standby owned by its login user, and the agent's sync file on the GPU
    machine (the agent picks it up on its next tick)."""

    machine_id: str
    gpu: InstanceInfo
    standby: InstanceInfo
    interval_seconds: int = DEFAULT_SYNC_INTERVAL_SECONDS
    excludes: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class LinkStandbyResult:
    # What was installed on which end ("rsync on the standby"), for the event.
    installed: list[str] = field(default_factory=list)
    detail: str | None = None


@dataclass(kw_only=True)
class SyncNowInput:
    """One sync now, waited for (a migration's final sync)."""

    machine_id: str
    gpu: InstanceInfo


@dataclass(kw_only=True)
class SyncOutcome:
    completed_at: datetime
    seconds: float
    bytes_sent: int


@dataclass(kw_only=True)
class UnlinkStandbyInput:
    """Stop the GPU machine's agent pushing (its sync file removed); a machine that is gone
    is not an error."""

    gpu: InstanceInfo


@dataclass(kw_only=True)
class RestoreFromStandbyInput:
    """Copy the standby's workspace onto a new GPU machine (rsync pulled by the GPU machine
    with a read-only key the standby accepts for this copy), then verify: the file list, sizes,
    modes and a hash of the tree are equal on both ends."""

    machine_id: str
    standby: InstanceInfo
    gpu: InstanceInfo
    excludes: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class RestoreFromStandbyResult:
    files: int
    bytes_total: int
    bytes_received: int
    seconds: float
    # The verified tree hash (the same on both ends).
    tree_hash: str


@dataclass(kw_only=True)
class InstanceCheckInput:
    """What the provider says of one instance now (a silent agent's machine, a reconciler's
    suspicion)."""

    instance: InstanceInfo


@dataclass(kw_only=True)
class InstanceCheckResult:
    status: InstanceStatus
    interrupted: bool = False
    detail: str | None = None
