"""Contracts of the wake/sleep schedules: what a schedule's trigger workflow and its activity
take and return, and the ids they use."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The workflow a schedule starts (workflows/schedule_trigger.py), by name, so that starting it
# needs no workflow code.
TRIGGER_WORKFLOW = "ScheduleTriggerWorkflow"


# The activity the trigger workflow calls by name (activities/schedule_trigger.py).
SEND_SCHEDULED_ACTION = "send_scheduled_action"


class ScheduleKind(StrEnum):
    """Which end of the day: `wake` sends the machine its `wake` update, `sleep` `hibernate`."""

    WAKE = "wake"
    SLEEP = "sleep"


class ScheduleMode(StrEnum):
    """What the two ends of the day do: hibernate and wake (nothing left on the host), or pause
    and resume (back in seconds on the same host; the stopped disk bills meanwhile)."""

    HIBERNATE = "hibernate"
    PAUSE = "pause"


def schedule_id(machine_id: str, kind: ScheduleKind) -> str:
    """The Temporal Schedule's id, and the prefix of its trigger workflows' ids (Temporal
    appends the fire time)."""
    return f"machine-{machine_id}-{kind.value}"


@dataclass(kw_only=True)
class ScheduleTriggerInput:
    machine_id: str
    kind: ScheduleKind
    # Recorded with the machine's event, e.g. "scheduled sleep at 18:00 America/Sao_Paulo".
    reason: str
    mode: ScheduleMode = ScheduleMode.HIBERNATE


@dataclass(kw_only=True)
class ScheduleTriggerResult:
    machine_id: str
    kind: ScheduleKind
    # True when the machine's state made the action pointless (already hibernated, destroyed).
    skipped: bool
    # "hibernated" / "paused" / "running", or "skipped: <why>".
    outcome: str
