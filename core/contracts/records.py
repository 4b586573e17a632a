"""The machine workflow's outbox: every write of its read models (events, the status
projection, instance records, the config) waits there, in the workflow's own state, until the
database has it. The workflow never waits on the database to act on a provider; a flusher
writes the outbox in order, outside the workflow's lock, as soon as the database answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.contracts.activities import DestroyedInstance
from core.contracts.events import EventType
from core.contracts.hibernation import HibernationConfig
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.standby import StandbyStatus
from core.contracts.states import MachineState


@dataclass(kw_only=True)
class PendingEvent:
    """One line of the machine's history, and the projection as it stood then."""

    # The machine's event number (continues across continue-as-new).
    seq: int
    event_type: EventType
    state: MachineState
    # When it happened: the row keeps this time, however late the database takes it.
    at: datetime
    reason: str | None = None
    instance: InstanceInfo | None = None
    gpu_utilization: float | None = None
    snapshot_id: str | None = None
    # Projected on the machine row (None clears it).
    idle_since: datetime | None = None


@dataclass(kw_only=True)
class PendingRecord:
    """One write, numbered in the order the workflow made it: the database applies each number
    once, in order, so a retried or repeated batch changes nothing."""

    number: int
    event: PendingEvent | None = None
    # An instance was created: recorded for billing and orphan hunting.
    instance_created: InstanceInfo | None = None
    instances_destroyed: list[DestroyedInstance] = field(default_factory=list)
    # The provider of `instances_destroyed` when it is not the machine's (its standby's).
    destroyed_provider: str | None = None
    config: HibernationConfig | None = None
    # The standby as it now stands (projected on the machine's standby row).
    standby: StandbyStatus | None = None


@dataclass(kw_only=True)
class RecordBatchInput:
    machine_id: str
    owner_id: str
    # For the machine's row when the API did not make it (a machine started by hand).
    spec: MachineSpec
    records: list[PendingRecord] = field(default_factory=list)


@dataclass(kw_only=True)
class RecordBatchResult:
    # How many records were new to the database (the rest it had already).
    applied: int
    # The highest record number the database holds for this machine.
    applied_through: int
