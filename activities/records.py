"""Activities that write the read models: events, the machine status projection, and the
provider instances Dumont has created. Plain functions run in the worker's thread pool, since
the database driver blocks."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity

from core.db import session_scope
from core.models import Event, Machine, ProviderInstanceRecord, SshKey, utcnow
from core.types import (
    ActivityName,
    InstanceInfo,
    OwnerKeys,
    OwnerKeysInput,
    RecordInstanceInput,
    RecordInstancesDestroyedInput,
    RecordResult,
    RecordStateInput,
)

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
            machine.status = input.state.value
            machine.status_reason = input.reason
            _project_instance(machine, input.instance)
            machine.updated_at = utcnow()
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


def _event_data(input: RecordStateInput) -> dict[str, object]:
    data: dict[str, object] = {"seq": input.seq}
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
