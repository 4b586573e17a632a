"""The contracts workflows, activities and the API agree on: plain dataclasses and enums, one
module per capability.

Every module here is imported inside the Temporal workflow sandbox: standard library and each
other only, no side effects (tests/contracts/test_imports.py holds them to it). Durations are int
seconds and times timezone-aware datetimes, both of which the default JSON converter round-trips.
Every dataclass is keyword-only: fields can be added (with a default) without breaking a caller.
"""

from __future__ import annotations

TASK_QUEUE = "dumont-machines"


def machine_workflow_id(machine_id: str) -> str:
    return f"machine-{machine_id}"


def instance_label(machine_id: str, attempt: int) -> str:
    """Deterministic provider label: a retried create finds the instance it already made."""
    return f"dumont-{machine_id}-{attempt}"


def instance_label_prefix(machine_id: str) -> str:
    return f"dumont-{machine_id}-"
