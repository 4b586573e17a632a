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
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
