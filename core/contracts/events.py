"""The kinds of lines in a machine's event history (the `events` table), as one enum: the
workflow writes them, the API and the CLI show them, alerts add theirs."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    CREATED = "created"  # the API accepted the machine
    PROVISIONING = "provisioning"
    BOOT_FAILED = "boot_failed"  # an attempt's instance never came up: destroyed, next offer
    RUNNING = "running"
    ERROR = "error"
    STOP_REQUESTED = "stop_requested"
    STOPPED = "stopped"
    START_REQUESTED = "start_requested"
    RESTART_REQUESTED = "restart_requested"
    DESTROY_REQUESTED = "destroy_requested"
    DESTROYED = "destroyed"
    AGENT_INSTALLED = "agent_installed"
    AGENT_INSTALL_FAILED = "agent_install_failed"
    ON_START_STARTED = "on_start_started"  # the on-start command was started after a boot
    ON_START_FAILED = "on_start_failed"  # it could not be started, or exited at once
    IDLE_DETECTED = "idle_detected"
    ACTIVITY_RESUMED = "activity_resumed"
    PAUSING = "pausing"
    PAUSED = "paused"
    PAUSE_FAILED = "pause_failed"
    RESUMING = "resuming"
    RESUMED = "resumed"  # the reason says how: on its host, or on a new one from the snapshot
    RESUME_FAILED = "resume_failed"
    SERVERLESS_ENABLED = "serverless_enabled"
    SERVERLESS_DISABLED = "serverless_disabled"
    # A gateway answered held requests 503: the resume or the service took too long.
    COLD_START_FAILED = "cold_start_failed"
    HIBERNATING = "hibernating"
    PRE_HIBERNATE_DONE = "pre_hibernate_done"
    PRE_HIBERNATE_FAILED = "pre_hibernate_failed"
    SNAPSHOT_TAKEN = "snapshot_taken"
    SNAPSHOT_FAILED = "snapshot_failed"
    HIBERNATE_FAILED = "hibernate_failed"
    HIBERNATED = "hibernated"
    DELETED = "deleted"
    WAKING = "waking"
    WOKE = "woke"
    WAKE_FAILED = "wake_failed"
    RESTORED = "restored"
    RESTORE_FAILED = "restore_failed"
    # GPU -> CPU failover
    STANDBY_ENABLED = "standby_enabled"
    STANDBY_CREATED = "standby_created"  # the CPU standby answers SSH
    STANDBY_LINKED = "standby_linked"  # the GPU's agent syncs to it (what was installed)
    STANDBY_FAILED = "standby_failed"  # it could not be made or linked: tried again later
    STANDBY_LOST = "standby_lost"  # preempted or gone: a new one is made
    STANDBY_REMOVED = "standby_removed"  # standby disabled or the machine destroyed
    SYNC_FAILING = "sync_failing"
    SYNC_HEALTHY = "sync_healthy"
    GPU_LOST = "gpu_lost"  # the GPU instance is gone, failed or interrupted
    INSTANCE_LOST = "instance_lost"  # the same without a standby
    MIGRATING = "migrating"  # a migration (to the standby, or back to a GPU) began
    ON_STANDBY = "on_standby"  # the standby serves the workspace
    GPU_SEARCH_FAILED = "gpu_search_failed"  # no GPU yet: tried again with backoff
    BACK_ON_GPU = "back_on_gpu"  # a new GPU runs with the standby's workspace
    MIGRATE_FAILED = "migrate_failed"
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
