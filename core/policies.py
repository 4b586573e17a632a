"""Settings turned into the policies workflows carry (read once per machine, so a replay or a
continue-as-new never sees different numbers)."""

from __future__ import annotations

from core.contracts.machine import LifecyclePolicy
from core.settings import Settings


def lifecycle_policy(settings: Settings) -> LifecyclePolicy:
    return LifecyclePolicy(
        boot_timeout_seconds=settings.boot_timeout_seconds,
        provision_attempts=settings.provision_attempts,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
        agent_interval_seconds=settings.agent_interval_seconds,
        agent_reinstall_seconds=settings.agent_reinstall_seconds,
        idle_grace_seconds=settings.idle_grace_seconds,
        snapshot_attempts=settings.snapshot_attempts,
        snapshot_retry_seconds=settings.snapshot_retry_seconds,
        auto_hibernate_retry_seconds=settings.auto_hibernate_retry_seconds,
        wake_offer_attempts=settings.wake_offer_attempts,
        wake_offer_retry_seconds=settings.wake_offer_retry_seconds,
        resume_same_host_seconds=settings.resume_same_host_seconds,
    )
