"""Activities that write the read models: events, the machine status projection, and the
provider instances Dumont has created. Plain functions run in the worker's thread pool, since
the database driver blocks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity

from core.contracts.activities import (
    ActivityName,
    OwnerKeys,
    OwnerKeysInput,
    RecordInstanceInput,
    RecordInstancesDestroyedInput,
    RecordResult,
    RecordStateInput,
)
from core.contracts.hibernation import RecordConfigInput
from core.contracts.machine import InstanceInfo
from core.contracts.states import MachineState
from core.db import session_scope
from core.models import Event, Machine, ProviderInstanceRecord, SshKey, utcnow

# How far back a retried write looks for the event it may already have written.
_RECENT_EVENTS = 50


class RecordActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name=ActivityName.RECORD_STATE)
    def record_state(self, input: RecordStateInput) -> RecordResult:
        """One event row plus the projection, in one transaction; a retry of a write that did
        commit (its answer lost) finds its sequence number and writes nothing."""
        with session_scope(self._engine) as session:
            if _event_exists(session, input.machine_id, input.seq):
                return RecordResult(written=0)
            machine = session.get(Machine, input.machine_id) or _machine_from(input)
            now = utcnow()
            _account_hibernation(machine, input.state, now)
            machine.status = input.state.value
            machine.status_reason = input.reason
            machine.idle_since = input.idle_since
            if input.snapshot_id is not None:
                machine.snapshot_id = input.snapshot_id
            _project_instance(machine, input.instance)
            machine.updated_at = now
            session.add(machine)
            session.flush()  # the event's foreign key needs the machine row first
            session.add(
                Event(
                    machine_id=input.machine_id,
                    owner_id=input.owner_id,
                    event_type=input.event_type,
                    state=input.state.value,
                    reason=input.reason,
                    data=_event_data(input),
                )
            )
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RECORD_CONFIG)
    def record_config(self, input: RecordConfigInput) -> RecordResult:
        """The machine's auto-hibernation config, as the workflow holds it (the heartbeat
        ingest judges busy/idle by the threshold stored here)."""
        config = input.config
        with session_scope(self._engine) as session:
            machine = session.get(Machine, input.machine_id)
            if machine is None:
                return RecordResult(written=0)
            machine.auto_hibernation_enabled = config.enabled
            machine.gpu_usage_threshold = config.gpu_usage_threshold
            machine.pause_after_minutes = config.pause_after_minutes
            machine.delete_after_minutes = config.delete_after_minutes
            machine.pre_hibernate_command = config.pre_hibernate_command
            machine.pre_hibernate_timeout_seconds = config.pre_hibernate_timeout_seconds
            machine.pre_hibernate_on_failure = config.pre_hibernate_on_failure
            # The ingest re-judges busy/idle with the new threshold on the next report.
            machine.agent_busy = None
            session.add(machine)
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RECORD_INSTANCE)
    def record_instance(self, input: RecordInstanceInput) -> RecordResult:
        info = input.instance
        with session_scope(self._engine) as session:
            row = _instance_row(session, info.provider, info.instance_id)
            if row is None:
                row = ProviderInstanceRecord(
                    machine_id=input.machine_id,
                    provider=info.provider,
                    instance_id=info.instance_id,
                    label=info.label,
                )
            row.offer_id = info.offer_id or row.offer_id
            row.gpu_name = info.gpu_name
            row.price_per_hour = info.price_per_hour
            row.geolocation = info.geolocation
            session.add(row)
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RECORD_INSTANCES_DESTROYED)
    def record_instances_destroyed(self, input: RecordInstancesDestroyedInput) -> RecordResult:
        """Mark instances destroyed, adding any that were created but never recorded (a boot
        cancelled between the create and its record)."""
        written = 0
        with session_scope(self._engine) as session:
            for destroyed in input.instances:
                row = _instance_row(session, input.provider, destroyed.instance_id)
                if row is None:
                    row = ProviderInstanceRecord(
                        machine_id=input.machine_id,
                        provider=input.provider,
                        instance_id=destroyed.instance_id,
                        label=destroyed.label,
                    )
                if row.destroyed_at is None:
                    row.destroyed_at = utcnow()
                    session.add(row)
                    written += 1
        return RecordResult(written=written)

    @activity.defn(name=ActivityName.OWNER_SSH_KEYS)
    def owner_ssh_keys(self, input: OwnerKeysInput) -> OwnerKeys:
        with Session(self._engine) as session:
            keys = session.exec(
                select(SshKey.public_key)
                .where(SshKey.user_id == input.owner_id)
                .order_by(col(SshKey.id))
            ).all()
        return OwnerKeys(public_keys=list(keys))


def _event_exists(session: Session, machine_id: str, seq: int) -> bool:
    recent = session.exec(
        select(Event.data)
        .where(Event.machine_id == machine_id)
        .order_by(col(Event.id).desc())
        .limit(_RECENT_EVENTS)
    ).all()
    return any(data.get("seq") == seq for data in recent)


# States in which no instance bills: time in them is what hibernation saves.
_HIBERNATED = frozenset({MachineState.HIBERNATED.value, MachineState.DELETED.value})


def _account_hibernation(machine: Machine, state: MachineState, now: datetime) -> None:
    """Open a hibernated period on entering hibernated/deleted (at the price of the instance
    that was destroyed); close it, adding its hours and avoided cost, on leaving."""
    if state.value in _HIBERNATED:
        if machine.hibernated_since is None:
            machine.hibernated_since = now
            machine.hibernated_price_per_hour = (
                machine.price_per_hour or machine.hibernated_price_per_hour
            )
        return
    if machine.hibernated_since is not None:
        seconds = max((now - machine.hibernated_since).total_seconds(), 0.0)
        machine.hibernated_seconds += seconds
        machine.hibernated_cost_avoided += (
            seconds / 3600.0 * (machine.hibernated_price_per_hour or 0.0)
        )
        machine.hibernated_since = None


def _event_data(input: RecordStateInput) -> dict[str, object]:
    data: dict[str, object] = {"seq": input.seq}
    if input.gpu_utilization is not None:
        data["gpu_utilization"] = input.gpu_utilization
    if input.snapshot_id is not None:
        data["snapshot_id"] = input.snapshot_id
    if input.instance is not None:
        data["instance_id"] = input.instance.instance_id
        data["provider"] = input.instance.provider
    return data


def _machine_from(input: RecordStateInput) -> Machine:
    """The projection row for a machine started without the API (the API inserts it first)."""
    spec = input.spec
    return Machine(
        id=input.machine_id,
        owner_id=input.owner_id,
        provider=spec.provider,
        kind=spec.kind.value,
        gpu_name=spec.gpu_name,
        num_gpus=spec.num_gpus,
        image=spec.image,
        disk_gb=spec.disk_gb,
        region=spec.region,
        max_price=spec.max_price,
        min_reliability=spec.min_reliability,
        min_vram_gb=spec.min_vram_gb,
    )


def _project_instance(machine: Machine, info: InstanceInfo | None) -> None:
    machine.instance_id = info.instance_id if info else None
    machine.price_per_hour = info.price_per_hour if info else None
    machine.geolocation = info.geolocation if info else None
    machine.ssh_host = info.ssh_host if info else None
    machine.ssh_port = info.ssh_port if info else None


def _instance_row(
    session: Session, provider: str, instance_id: str
) -> ProviderInstanceRecord | None:
    return session.exec(
        select(ProviderInstanceRecord).where(
            ProviderInstanceRecord.provider == provider,
            ProviderInstanceRecord.instance_id == instance_id,
        )
    ).first()
