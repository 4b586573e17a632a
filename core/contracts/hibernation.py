"""Auto-hibernation: the config and its rules (shared by the workflow's validators, the API's
422s and the CLI), the carried status, and the messages of hibernate, wake, snapshot, restore."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from core.contracts.machine import InstanceInfo
from core.contracts.states import MachineState


@dataclass(kw_only=True)
class HibernationConfig:
    """A machine's auto-hibernation settings (the seed's `auto_hibernation` block plus the
    pre-hibernate hook). Limits are below."""

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
    # A machine paused this long is hibernated: its stopped disk bills by the hour, its
    # snapshot (already taken by the pause) costs less.
    hibernate_paused_after_minutes: int = 24 * 60


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
class ConfigureInput:
    """Update `configure`: fields left None keep their value."""

    enabled: bool | None = None
    gpu_usage_threshold: float | None = None
    pause_after_minutes: int | None = None
    delete_after_minutes: int | None = None
    pre_hibernate_command: str | None = None
    pre_hibernate_timeout_seconds: int | None = None
    pre_hibernate_on_failure: str | None = None
    hibernate_paused_after_minutes: int | None = None
    # True removes the hook (pre_hibernate_command None means "unchanged").
    clear_pre_hibernate_command: bool = False


@dataclass(kw_only=True)
class ConfigureResult:
    machine_id: str
    config: HibernationConfig


@dataclass(kw_only=True)
class HibernateInput:
    reason: str | None = None


@dataclass(kw_only=True)
class HibernateResult:
    machine_id: str
    state: MachineState
    snapshot_id: str
    instance_destroyed: bool


@dataclass(kw_only=True)
class WakeInput:
    """Update `wake`: each field overrides the machine's own, for this wake only."""

    gpu_type: str | None = None
    region: str | None = None
    max_price: float | None = None
    reason: str | None = None


@dataclass(kw_only=True)
class WakeResult:
    machine_id: str
    state: MachineState
    snapshot_id: str
    instance: InstanceInfo
    seconds: float  # from the wake request to running, in workflow time


@dataclass(kw_only=True)
class SnapshotInput:
    """Update `snapshot`: a snapshot of the running machine, which keeps running."""

    reason: str | None = None


@dataclass(kw_only=True)
class SnapshotTaken:
    machine_id: str
    snapshot_id: str
    root_hash: str
    logical_bytes: int
    uploaded_bytes: int


@dataclass(kw_only=True)
class RestoreInput:
    """Update `restore`: put a committed snapshot (default: the latest) back on the running
    machine's workspace."""

    snapshot_id: str | None = None
    reason: str | None = None


@dataclass(kw_only=True)
class RestoreDone:
    machine_id: str
    snapshot_id: str
    root_hash: str


@dataclass(kw_only=True)
class RecordConfigInput:
    machine_id: str
    config: HibernationConfig


@dataclass(kw_only=True)
class PreHibernateInput:
    machine_id: str
    instance: InstanceInfo
    command: str
    timeout_seconds: int


@dataclass(kw_only=True)
class PreHibernateResult:
    ok: bool
    exit_status: int | None
    # The tail of the command's output, for the event.
    output: str = ""


GPU_THRESHOLD_RANGE = (0.0, 100.0)


PAUSE_AFTER_RANGE = (1, 7 * 24 * 60)  # minutes: one minute to one week


DELETE_AFTER_RANGE = (1, 365 * 24 * 60)  # minutes: one minute to one year


HIBERNATE_PAUSED_AFTER_RANGE = (1, 365 * 24 * 60)  # minutes: one minute to one year


HOOK_TIMEOUT_RANGE = (1, 3600)  # seconds


HOOK_COMMAND_MAX = 4000


ON_FAILURE = ("abort", "continue")


def _outside(value: float, bounds: tuple[float, float]) -> bool:
    return not bounds[0] <= value <= bounds[1]


def config_problem(input: ConfigureInput) -> str | None:
    """What is wrong with a configure request, in words for the user; None when it is fine."""
    if input.gpu_usage_threshold is not None and _outside(
        input.gpu_usage_threshold, GPU_THRESHOLD_RANGE
    ):
        return "gpu_usage_threshold must be between 0 and 100 (percent)"
    if input.pause_after_minutes is not None and _outside(
        input.pause_after_minutes, PAUSE_AFTER_RANGE
    ):
        return (
            f"pause_after_minutes must be between {PAUSE_AFTER_RANGE[0]} and {PAUSE_AFTER_RANGE[1]}"
        )
    if input.delete_after_minutes is not None and _outside(
        input.delete_after_minutes, DELETE_AFTER_RANGE
    ):
        return (
            f"delete_after_minutes must be between {DELETE_AFTER_RANGE[0]} and "
            f"{DELETE_AFTER_RANGE[1]}"
        )
    if input.hibernate_paused_after_minutes is not None and _outside(
        input.hibernate_paused_after_minutes, HIBERNATE_PAUSED_AFTER_RANGE
    ):
        low, high = HIBERNATE_PAUSED_AFTER_RANGE
        return f"hibernate_paused_after_minutes must be between {low} and {high}"
    if input.pre_hibernate_timeout_seconds is not None and _outside(
        input.pre_hibernate_timeout_seconds, HOOK_TIMEOUT_RANGE
    ):
        return (
            f"pre_hibernate_timeout_seconds must be between {HOOK_TIMEOUT_RANGE[0]} and "
            f"{HOOK_TIMEOUT_RANGE[1]}"
        )
    if input.pre_hibernate_on_failure is not None and input.pre_hibernate_on_failure not in (
        ON_FAILURE
    ):
        return "pre_hibernate_on_failure must be 'abort' or 'continue'"
    command = input.pre_hibernate_command
    if command is not None and not (0 < len(command.strip()) and len(command) <= HOOK_COMMAND_MAX):
        return f"pre_hibernate_command must be 1 to {HOOK_COMMAND_MAX} characters"
    return None


def apply_config(config: HibernationConfig, input: ConfigureInput) -> HibernationConfig:
    """The config after a (valid) configure request."""
    changed = replace(config)
    for name in (
        "enabled",
        "gpu_usage_threshold",
        "pause_after_minutes",
        "delete_after_minutes",
        "pre_hibernate_timeout_seconds",
        "pre_hibernate_on_failure",
        "hibernate_paused_after_minutes",
    ):
        value = getattr(input, name)
        if value is not None:
            setattr(changed, name, value)
    if input.clear_pre_hibernate_command:
        changed.pre_hibernate_command = None
    elif input.pre_hibernate_command is not None:
        changed.pre_hibernate_command = input.pre_hibernate_command
    return changed
