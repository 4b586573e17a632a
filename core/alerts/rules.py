"""Alert rule kinds, their defaults (the seed's), and the rule as evaluation sees it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RuleKind(StrEnum):
    GPU_UTILIZATION = "gpu_utilization"  # % of the GPUs busy
    DISK_USAGE = "disk_usage"  # % of the workspace file system used
    MEMORY_USAGE = "memory_usage"  # % of RAM used
    MACHINE_OFFLINE = "machine_offline"  # no agent report for `duration_seconds`


# Kinds compared against a percentage threshold; offline has none.
METRIC_KINDS = frozenset({RuleKind.GPU_UTILIZATION, RuleKind.DISK_USAGE, RuleKind.MEMORY_USAGE})


@dataclass(frozen=True)
class Rule:
    kind: RuleKind
    # Fires when the value is strictly above this (percent); None for `machine_offline`.
    threshold: float | None
    # How long the condition must hold before it fires.
    duration_seconds: int
    enabled: bool = True


# GPU > 90 % for 5 min, disk > 85 %, memory > 90 %, offline (three 30 s report intervals).
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(RuleKind.GPU_UTILIZATION, 90.0, 300),
    Rule(RuleKind.DISK_USAGE, 85.0, 0),
    Rule(RuleKind.MEMORY_USAGE, 90.0, 0),
    Rule(RuleKind.MACHINE_OFFLINE, None, 90),
)

LABELS: dict[RuleKind, str] = {
    RuleKind.GPU_UTILIZATION: "GPU utilisation",
    RuleKind.DISK_USAGE: "disk usage",
    RuleKind.MEMORY_USAGE: "memory usage",
    RuleKind.MACHINE_OFFLINE: "agent silence",
}
