"""Plain dataclasses and enums shared by workflows, activities and the API.

This module is imported inside the Temporal workflow sandbox: stdlib only, no side effects.
Durations are int seconds and times are timezone-aware datetimes, both of which the default
Temporal JSON converter round-trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

TASK_QUEUE = "dumont-machines"


def machine_workflow_id(machine_id: str) -> str:
    return f"machine-{machine_id}"


def instance_label(machine_id: str, attempt: int) -> str:
    """Deterministic provider label: a retried create finds the instance it already made."""
    return f"dumont-{machine_id}-{attempt}"


def instance_label_prefix(machine_id: str) -> str:
    return f"dumont-{machine_id}-"


class MachineState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    HIBERNATING = "hibernating"
    HIBERNATED = "hibernated"
    WAKING = "waking"
    STANDBY = "standby"
    FAILING_OVER = "failing_over"
    ERROR = "error"
    DELETED = "deleted"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"


class InstanceStatus(StrEnum):
    """A provider instance's state, normalised across providers."""

    PROVISIONING = "provisioning"  # requested, image loading
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"  # exited / could not start: destroy and try elsewhere
    UNKNOWN = "unknown"  # host lost contact; may recover
    GONE = "gone"  # destroyed or never existed


@dataclass
class MachineSpec:
    """What the user asked for. Offers are matched against it on every provision."""

    gpu_name: str
    image: str
    disk_gb: int
    num_gpus: int = 1
    region: str | None = None
    max_price: float | None = None
    min_reliability: float | None = None
    min_vram_gb: float | None = None
    provider: str = "vast"


@dataclass
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


@dataclass
class MachineEvent:
    """One line of a machine's history, written to the events table."""

    event_type: str
    state: MachineState
    reason: str | None = None


@dataclass
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


@dataclass
class HibernationConfig:
    """A machine's auto-hibernation settings (the seed's `auto_hibernation` block plus the
    pre-hibernate hook). Limits are in `core.hibernation`."""

    enabled: bool = True
    gpu_usage_threshold: float = 5.0
    pause_after_minutes: int = 3
    delete_after_minutes: int = 30
    # Run on the machine before every snapshot (e.g. save a training checkpoint).
    pre_hibernate_command: str | None = None
    pre_hibernate_timeout_seconds: int = 300
    # "abort": a failed hook cancels the hibernate (the machine keeps running);
    # "continue": the failure is recorded and the snapshot goes ahead.
    pre_hibernate_on_failure: str = "abort"


@dataclass
class AgentStatus:
    """What the machine workflow knows of its agent; deadlines are absolute so that a
    continue-as-new or a worker restart keeps them."""

    online: bool | None = None  # None: no report since the last install
    gpu_busy: bool | None = None
    gpu_utilization: float | None = None
    active_users: int | None = None
    last_input_at: datetime | None = None
    # `at` of the newest report applied; older or equal reports are ignored.
    last_report_at: datetime | None = None
    installed_at: datetime | None = None
    install_error: str | None = None
    # An agent with no report by then is taken as offline.
    report_due_by: datetime | None = None
    # When the next re-install is due; None when none is wanted.
    reinstall_at: datetime | None = None
    last_reinstall_at: datetime | None = None
    reinstalls: int = 0


@dataclass
class HibernationStatus:
    """Idleness and snapshots; every deadline is absolute so that a continue-as-new or a
    worker restart keeps it."""

    # Up with nothing going on since then (None: busy, unknown, or not up).
    idle_since: datetime | None = None
    # No idleness counts before this (the boot or restore grace period).
    grace_until: datetime | None = None
    # When the idle machine is hibernated (None: not idle, or auto-hibernation off).
    hibernate_at: datetime | None = None
    # When the hibernated machine becomes `deleted`.
    delete_at: datetime | None = None
    # The last committed snapshot of the workspace (what a wake restores).
    snapshot_id: str | None = None
    # The instance was destroyed after the snapshot: the next instance gets it restored.
    needs_restore: bool = False
    # The snapshot being taken: chosen before the activity runs, so a retry resumes it.
    pending_snapshot_id: str | None = None
    hibernated_at: datetime | None = None
    # An automatic hibernate that failed is not tried again before this.
    retry_at: datetime | None = None


@dataclass
class MachineSnapshot:
    """The workflow's whole state: carried across continue-as-new and returned by `state()`."""

    machine_id: str
    owner_id: str
    spec: MachineSpec
    state: MachineState = MachineState.STARTING
    state_since: datetime | None = None
    instance: InstanceInfo | None = None
    attempt: int = 0
    reason: str | None = None
    boot_deadline: datetime | None = None
    counters: dict[str, int] = field(default_factory=dict)
    policy: LifecyclePolicy | None = None
    # Offers whose instance failed to boot: the next attempt provisions elsewhere.
    failed_offers: list[str] = field(default_factory=list)
    agent: AgentStatus = field(default_factory=AgentStatus)
    config: HibernationConfig = field(default_factory=HibernationConfig)
    hibernation: HibernationStatus = field(default_factory=HibernationStatus)


@dataclass
class MachineInput:
    machine_id: str
    owner_id: str
    spec: MachineSpec
    # Set only by continue-as-new.
    carried: MachineSnapshot | None = None


@dataclass
class MachineResult:
    machine_id: str
    state: MachineState


@dataclass
class ActionInput:
    """Input of the stop/start/restart/destroy updates."""

    reason: str | None = None


@dataclass
class ActionResult:
    machine_id: str
    state: MachineState
    instance_id: str | None = None


@dataclass
class SshKeysChanged:
    """Signal `ssh_keys_changed`: the owner's keys changed; a running machine gets them attached."""

    fingerprint: str | None = None


@dataclass
class AgentReport:
    """Signal `agent_report`: sent by the API (or the fleet monitor) on a TRANSITION only —
    online↔offline, busy↔idle — never on every heartbeat, which go to the database."""

    online: bool
    at: datetime
    gpu_busy: bool | None = None  # None: the GPU could not be read, which counts as busy
    # The whole verdict: GPU at or above threshold, unreadable, or a keystroke in the interval.
    # None on old reports: the workflow then judges from gpu_busy and last_input_at.
    busy: bool | None = None
    gpu_utilization: float | None = None
    active_users: int | None = None
    last_input_at: datetime | None = None


class ErrorType(StrEnum):
    """`ApplicationError.type` values that workflows, activities and the API agree on."""

    INVALID_TRANSITION = "InvalidTransition"  # update rejected by its validator (HTTP 409)
    ACTION_FAILED = "ActionFailed"  # an accepted update could not finish; the state says why
    SUPERSEDED = "Superseded"  # an accepted update was overtaken by destroy
    NO_MATCHING_OFFER = "NoMatchingOffer"
    OFFERS_TAKEN = "OffersTaken"  # every matching offer was rented by others: search again
    INSTANCE_FAILED = "InstanceFailed"  # the instance will never boot: destroy it, go elsewhere
    INSTANCE_GONE = "InstanceGone"  # the provider no longer has the instance
    RATE_LIMITED = "RateLimited"
    INVALID_INPUT = "InvalidInput"  # an update's input is out of range (HTTP 422)
    SNAPSHOT_FAILED = "SnapshotFailed"
    RESTORE_FAILED = "RestoreFailed"
    MACHINE_UNREACHABLE = "MachineUnreachable"


# --- activity contracts: names, one dataclass in and one out ---------------------------------
# Workflows call activities by these names so that they never import activity modules (which
# carry httpx, asyncssh and sqlmodel) into the sandbox.


class ActivityName(StrEnum):
    LIFECYCLE_POLICY = "lifecycle_policy"
    PROVISION_INSTANCE = "provision_instance"
    ATTACH_SSH_KEYS = "attach_ssh_keys"
    WAIT_UNTIL_READY = "wait_until_ready"
    STOP_INSTANCE = "stop_instance"
    START_INSTANCE = "start_instance"
    REBOOT_INSTANCE = "reboot_instance"
    DESTROY_INSTANCES = "destroy_instances"
    RECORD_STATE = "record_state"
    RECORD_INSTANCE = "record_instance"
    RECORD_INSTANCES_DESTROYED = "record_instances_destroyed"
    OWNER_SSH_KEYS = "owner_ssh_keys"
    INSTALL_AGENT = "install_agent"
    RECORD_CONFIG = "record_config"
    RUN_PRE_HIBERNATE = "run_pre_hibernate"
    SNAPSHOT_WORKSPACE = "snapshot_workspace"
    RESTORE_WORKSPACE = "restore_workspace"
    COLLECT_SNAPSHOT_GARBAGE = "collect_snapshot_garbage"
    # The fleet monitor's
    SWEEP_SILENT_AGENTS = "sweep_silent_agents"
    EVALUATE_ALERTS = "evaluate_alerts"
    DELIVER_WEBHOOKS = "deliver_webhooks"
    PRUNE_METRICS = "prune_metrics"


@dataclass
class LifecyclePolicyInput:
    machine_id: str


@dataclass
class ProvisionInput:
    machine_id: str
    spec: MachineSpec
    label: str
    excluded_offers: list[str] = field(default_factory=list)


@dataclass
class AttachKeysInput:
    instance: InstanceInfo
    # The owner's keys; Dumont's own key is always attached as well.
    public_keys: list[str] = field(default_factory=list)


@dataclass
class AttachKeysResult:
    attached: int


@dataclass
class WaitReadyInput:
    instance: InstanceInfo
    deadline: datetime


@dataclass
class WaitReadyResult:
    ready: bool
    instance: InstanceInfo
    detail: str | None = None


@dataclass
class InstanceActionInput:
    instance: InstanceInfo


@dataclass
class InstanceActionResult:
    instance_id: str
    status: InstanceStatus


@dataclass
class DestroyInstancesInput:
    provider: str
    machine_id: str
    # Only this attempt's instance; every instance of the machine when None.
    label: str | None = None


@dataclass
class DestroyedInstance:
    instance_id: str
    label: str


@dataclass
class DestroyInstancesResult:
    destroyed: list[DestroyedInstance] = field(default_factory=list)


@dataclass
class RecordStateInput:
    machine_id: str
    owner_id: str
    spec: MachineSpec
    # Per-machine sequence number: a retried write finds the event it already wrote.
    seq: int
    event_type: str
    state: MachineState
    reason: str | None = None
    instance: InstanceInfo | None = None
    # Shown with the event (the seed's events carry them).
    gpu_utilization: float | None = None
    snapshot_id: str | None = None
    # Projected on the machine row (None clears it).
    idle_since: datetime | None = None


@dataclass
class RecordInstanceInput:
    machine_id: str
    instance: InstanceInfo


@dataclass
class RecordInstancesDestroyedInput:
    machine_id: str
    provider: str
    instances: list[DestroyedInstance] = field(default_factory=list)


@dataclass
class RecordResult:
    written: int


@dataclass
class OwnerKeysInput:
    owner_id: str


@dataclass
class OwnerKeys:
    public_keys: list[str] = field(default_factory=list)


@dataclass
class InstallAgentInput:
    machine_id: str
    instance: InstanceInfo


@dataclass
class InstallAgentResult:
    """`installed=False` when the provider does not report the instance running (nothing was
    done); `detail` says what happened either way."""

    installed: bool
    detail: str | None = None


# --- the fleet monitor -------------------------------------------------------------------------

FLEET_MONITOR_WORKFLOW_ID = "fleet-monitor"


@dataclass
class MonitorState:
    """The monitor's whole state, carried across continue-as-new: absolute deadlines."""

    next_tick_at: datetime | None = None
    next_prune_at: datetime | None = None
    ticks: int = 0


@dataclass
class MonitorInput:
    interval_seconds: int = 30
    prune_interval_seconds: int = 3600
    carried: MonitorState | None = None


@dataclass
class MonitorTick:
    """One monitor round's time: every activity of a round judges by it, so a retried
    activity decides as the first try did."""

    now: datetime


@dataclass
class SweepResult:
    offline: int = 0
    signalled: int = 0


@dataclass
class EvaluateAlertsResult:
    fired: int = 0
    resolved: int = 0


@dataclass
class DeliverWebhooksResult:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


@dataclass
class PruneMetricsResult:
    deleted: int = 0


# --- auto-hibernation: updates and activities ------------------------------------------------


@dataclass
class ConfigureInput:
    """Update `configure`: fields left None keep their value."""

    enabled: bool | None = None
    gpu_usage_threshold: float | None = None
    pause_after_minutes: int | None = None
    delete_after_minutes: int | None = None
    pre_hibernate_command: str | None = None
    pre_hibernate_timeout_seconds: int | None = None
    pre_hibernate_on_failure: str | None = None
    # True removes the hook (pre_hibernate_command None means "unchanged").
    clear_pre_hibernate_command: bool = False


@dataclass
class ConfigureResult:
    machine_id: str
    config: HibernationConfig


@dataclass
class HibernateInput:
    reason: str | None = None


@dataclass
class HibernateResult:
    machine_id: str
    state: MachineState
    snapshot_id: str
    instance_destroyed: bool


@dataclass
class WakeInput:
    """Update `wake`: each field overrides the machine's own, for this wake only."""

    gpu_type: str | None = None
    region: str | None = None
    max_price: float | None = None
    reason: str | None = None


@dataclass
class WakeResult:
    machine_id: str
    state: MachineState
    snapshot_id: str
    instance: InstanceInfo
    seconds: float  # from the wake request to running, in workflow time


@dataclass
class SnapshotInput:
    """Update `snapshot`: a snapshot of the running machine, which keeps running."""

    reason: str | None = None


@dataclass
class SnapshotTaken:
    machine_id: str
    snapshot_id: str
    root_hash: str
    logical_bytes: int
    uploaded_bytes: int


@dataclass
class RestoreInput:
    """Update `restore`: put a committed snapshot (default: the latest) back on the running
    machine's workspace."""

    snapshot_id: str | None = None
    reason: str | None = None


@dataclass
class RestoreDone:
    machine_id: str
    snapshot_id: str
    root_hash: str


@dataclass
class RecordConfigInput:
    machine_id: str
    config: HibernationConfig


@dataclass
class PreHibernateInput:
    machine_id: str
    instance: InstanceInfo
    command: str
    timeout_seconds: int


@dataclass
class PreHibernateResult:
    ok: bool
    exit_status: int | None
    # The tail of the command's output, for the event.
    output: str = ""
