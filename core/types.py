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
