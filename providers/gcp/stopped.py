"""Why a VM is stopped (TERMINATED), read from its zone's operations: GCE preempted it, or
the last start found the zone out of capacity, or it was simply stopped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from google.cloud import compute_v1

from providers.gcp.errors import STOCKOUT_CODES
from providers.gcp.listing import parse_timestamp

PREEMPTED = "compute.instances.preempted"
# The operations that decide a stopped VM's story; the newest one tells it.
_STORY = frozenset({"start", "stop", "insert", PREEMPTED})


class StopCause(StrEnum):
    STOPPED = "stopped"  # asked for (by Dumont, the owner, or a guest shutdown)
    PREEMPTED = "preempted"  # a Spot VM reclaimed by GCE
    NO_CAPACITY = "no_capacity"  # the last start found the zone out of this machine type


@dataclass(frozen=True)
class StopReason:
    cause: StopCause
    message: str | None = None


def stop_reason(operations: list[compute_v1.Operation]) -> StopReason:
    """The reason the newest deciding operation gives (they come in no promised order)."""
    deciding = [op for op in operations if op.operation_type in _STORY]
    if not deciding:
        return StopReason(StopCause.STOPPED)
    newest = max(deciding, key=_when)
    if newest.operation_type == PREEMPTED:
        return StopReason(StopCause.PREEMPTED, newest.status_message or "Instance was preempted.")
    errors = list(newest.error.errors) if newest.error else []
    if newest.operation_type == "start" and any(e.code in STOCKOUT_CODES for e in errors):
        detail = "; ".join(e.message for e in errors if e.code in STOCKOUT_CODES)
        return StopReason(StopCause.NO_CAPACITY, f"the zone has no capacity to start it: {detail}")
    return StopReason(StopCause.STOPPED)


def _when(operation: compute_v1.Operation) -> datetime:
    return parse_timestamp(operation.insert_time) or _EPOCH


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
