"""Activity names, and the inputs and results of the provider and record activities (each
capability's own activities have theirs in its module).

Workflows call activities by these names so that activity modules (httpx, asyncssh, sqlmodel)
never enter the workflow sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.states import InstanceStatus, MachineState


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
    RECORD_BATCH = "record_batch"
    RECORD_INSTANCE = "record_instance"
    RECORD_INSTANCES_DESTROYED = "record_instances_destroyed"
    OWNER_SSH_KEYS = "owner_ssh_keys"
    INSTALL_AGENT = "install_agent"
    RECORD_CONFIG = "record_config"
    RUN_PRE_HIBERNATE = "run_pre_hibernate"
    SNAPSHOT_WORKSPACE = "snapshot_workspace"
    RESTORE_WORKSPACE = "restore_workspace"
    RUN_ON_START = "run_on_start"
    COLLECT_SNAPSHOT_GARBAGE = "collect_snapshot_garbage"
    # GPU -> CPU failover (core/contracts/standby.py)
    LINK_STANDBY = "link_standby"
    UNLINK_STANDBY = "unlink_standby"
    SYNC_NOW = "sync_now"
    RESTORE_FROM_STANDBY = "restore_from_standby"
    CHECK_INSTANCE = "check_instance"
    # The fleet monitor's
    SWEEP_SILENT_AGENTS = "sweep_silent_agents"
    EVALUATE_ALERTS = "evaluate_alerts"
    DELIVER_WEBHOOKS = "deliver_webhooks"
    PRUNE_METRICS = "prune_metrics"
    RECONCILE_INSTANCES = "reconcile_instances"


@dataclass(kw_only=True)
class LifecyclePolicyInput:
    machine_id: str


@dataclass(kw_only=True)
class ProvisionInput:
    machine_id: str
    spec: MachineSpec
    label: str
    excluded_offers: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class AttachKeysInput:
    instance: InstanceInfo
    # The owner's keys; Dumont's own key is always attached as well.
    public_keys: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class AttachKeysResult:
    attached: int
    # Why nothing was attached: the provider takes keys only at creation.
    detail: str | None = None


@dataclass(kw_only=True)
class WaitReadyInput:
    instance: InstanceInfo
    deadline: datetime
    # A resume: an instance whose host's GPUs are taken fails at once (HOST_UNAVAILABLE)
    # instead of waiting for them until the deadline.
    fail_when_waiting_for_host: bool = False


@dataclass(kw_only=True)
class WaitReadyResult:
    ready: bool
    instance: InstanceInfo
    detail: str | None = None


@dataclass(kw_only=True)
class InstanceActionInput:
    instance: InstanceInfo


@dataclass(kw_only=True)
class InstanceActionResult:
    instance_id: str
    status: InstanceStatus


@dataclass(kw_only=True)
class DestroyInstancesInput:
    provider: str
    machine_id: str
    # Only this attempt's instance; every instance of the machine when None.
    label: str | None = None
    # Every standby instance of the machine (`standby_label`) instead of its own instances.
    standby: bool = False


@dataclass(kw_only=True)
class DestroyedInstance:
    instance_id: str
    label: str


@dataclass(kw_only=True)
class DestroyInstancesResult:
    destroyed: list[DestroyedInstance] = field(default_factory=list)


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
class RecordInstanceInput:
    machine_id: str
    instance: InstanceInfo


@dataclass(kw_only=True)
class RecordInstancesDestroyedInput:
    machine_id: str
    provider: str
    instances: list[DestroyedInstance] = field(default_factory=list)


@dataclass(kw_only=True)
class RecordResult:
    written: int


@dataclass(kw_only=True)
class OwnerKeysInput:
    owner_id: str


@dataclass(kw_only=True)
class OwnerKeys:
    public_keys: list[str] = field(default_factory=list)
