"""Auto-hibernation rules shared by the workflow (validators), the API (422s) and the CLI.

Imported inside the Temporal workflow sandbox: stdlib only, pure functions.
"""

from __future__ import annotations

from dataclasses import replace

from core.types import ConfigureInput, HibernationConfig

GPU_THRESHOLD_RANGE = (0.0, 100.0)
PAUSE_AFTER_RANGE = (1, 7 * 24 * 60)  # minutes: one minute to one week
DELETE_AFTER_RANGE = (1, 365 * 24 * 60)  # minutes: one minute to one year
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
    ):
        value = getattr(input, name)
        if value is not None:
            setattr(changed, name, value)
    if input.clear_pre_hibernate_command:
        changed.pre_hibernate_command = None
    elif input.pre_hibernate_command is not None:
        changed.pre_hibernate_command = input.pre_hibernate_command
    return changed
