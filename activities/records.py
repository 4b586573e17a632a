"""Activities that write the read models: events, the machine status projection, and the
provider instances Dumont has created. Plain functions run in the worker's thread pool, since
the database driver blocks.

`record_batch` writes a machine workflow's outbox (see core/contracts/records.py): every record
is numbered, and the machine's row says up to which number it holds, so a batch is applied
once, in order, in one transaction. The single-record activities below it serve runs started
before the outbox (they retry under the workflow's lock, which the outbox no longer does).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity

from core.contracts.activities import (
    ActivityName,
    DestroyedInstance,
    OwnerKeys,
    OwnerKeysInput,
    RecordInstanceInput,
    RecordInstancesDestroyedInput,
    RecordResult,
    RecordStateInput,
)
from core.contracts.hibernation import HibernationConfig, RecordConfigInput
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.records import PendingEvent, RecordBatchInput, RecordBatchResult
from core.contracts.states import MachineState
from core.db import session_scope
from core.models import Event, Machine, ProviderInstanceRecord, SshKey, utcnow
from core.savings import gpu_per_hour
from core.standby.projection import apply_standby
from core.standby.table import MachineStandby

# How far back a retried single write looks for the event it may already have written.
_RECENT_EVENTS = 50


class RecordActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name=ActivityName.RECORD_BATCH)
    def record_batch(self, input: RecordBatchInput) -> RecordBatchResult:
        """The records the database does not hold yet, in order, in one transaction; the
        machine's row is locked meanwhile, so two writers of one machine take turns."""
        with session_scope(self._engine) as session:
            machine = session.get(Machine, input.machine_id, with_for_update=True)
            if machine is None:
                machine = _machine_row(input.machine_id, input.owner_id, input.spec)
                session.add(machine)
                session.flush()
            fresh = [r for r in input.records if r.number > machine.records_applied]
            for record in fresh:
                if record.instance_created is not None:
                    _record_instance(session, input.machine_id, record.instance_created)
                if record.instances_destroyed:
                    # A standby's instances are another provider's (GCE for a vast machine).
                    provider = record.destroyed_provider or input.spec.provider
                    _record_destroyed(
                        session, input.machine_id, provider, record.instances_destroyed
                    )
                if record.config is not None:
                    _apply_config(machine, record.config)
                if record.event is not None:
                    _apply_event(session, machine, input.owner_id, record.event, record.event.at)
                if record.standby is not None:
                    apply_standby(session, input.machine_id, record.standby)
                machine.records_applied = record.number
            session.add(machine)
            return RecordBatchResult(applied=len(fresh), applied_through=machine.records_applied)

    @activity.defn(name=ActivityName.RECORD_STATE)
    def record_state(self, input: RecordStateInput) -> RecordResult:
        """One event row plus the projection, in one transaction; a retry of a write that did
        commit (its answer lost) finds its sequence number and writes nothing."""
        with session_scope(self._engine) as session:
            if _event_exists(session, input.machine_id, input.seq):
                return RecordResult(written=0)
            machine = session.get(Machine, input.machine_id) or _machine_row(
                input.machine_id, input.owner_id, input.spec
            )
            session.add(machine)
            session.flush()  # the event's foreign key needs the machine row first
            _apply_event(session, machine, input.owner_id, input, utcnow())
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RECORD_CONFIG)
    def record_config(self, input: RecordConfigInput) -> RecordResult:
        with session_scope(self._engine) as session:
            machine = session.get(Machine, input.machine_id)
            if machine is None:
                return RecordResult(written=0)
            _apply_config(machine, input.config)
            session.add(machine)
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RECORD_INSTANCE)
    def record_instance(self, input: RecordInstanceInput) -> RecordResult:
        with session_scope(self._engine) as session:
            _record_instance(session, input.machine_id, input.instance)
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RECORD_INSTANCES_DESTROYED)
    def record_instances_destroyed(self, input: RecordInstancesDestroyedInput) -> RecordResult:
        with session_scope(self._engine) as session:
            written = _record_destroyed(session, input.machine_id, input.provider, input.instances)
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


def _apply_event(
    session: Session,
    machine: Machine,
    owner_id: str,
    event: PendingEvent | RecordStateInput,
    at: datetime,
) -> None:
    """The event's row, and the projection as it stood when it happened (`at`)."""
    standby = session.get(MachineStandby, machine.id)
    _account_hibernation(machine, event.state, at, standby)
    _account_pause(machine, event.state, at)
    _account_standby(machine, event.state, at, standby)
    machine.status = event.state.value
    machine.status_reason = event.reason
    machine.idle_since = event.idle_since
    if event.snapshot_id is not None:
        machine.snapshot_id = event.snapshot_id
    _project_instance(machine, event.instance)
    _account_cost(machine, standby, at)
    machine.updated_at = utcnow()
    session.add(
        Event(
            machine_id=machine.id,
            owner_id=owner_id,
            event_type=event.event_type,
            state=event.state.value,
            reason=event.reason,
            data=_event_data(event),
            timestamp=at,
        )
    )


def _apply_config(machine: Machine, config: HibernationConfig) -> None:
    """The machine's auto-hibernation config, as the workflow holds it (the heartbeat ingest
    judges busy/idle by the threshold stored here)."""
    machine.auto_hibernation_enabled = config.enabled
    machine.gpu_usage_threshold = config.gpu_usage_threshold
    machine.pause_after_minutes = config.pause_after_minutes
    machine.delete_after_minutes = config.delete_after_minutes
    machine.pre_hibernate_command = config.pre_hibernate_command
    machine.pre_hibernate_timeout_seconds = config.pre_hibernate_timeout_seconds
    machine.pre_hibernate_on_failure = config.pre_hibernate_on_failure
    machine.hibernate_paused_after_minutes = config.hibernate_paused_after_minutes
    # The ingest re-judges busy/idle with the new threshold on the next report.
    machine.agent_busy = None


def _record_instance(session: Session, machine_id: str, info: InstanceInfo) -> None:
    row = _instance_row(session, info.provider, info.instance_id)
    if row is None:
        row = ProviderInstanceRecord(
            machine_id=machine_id,
            provider=info.provider,
            instance_id=info.instance_id,
            label=info.label,
        )
    row.offer_id = info.offer_id or row.offer_id
    row.gpu_name = info.gpu_name
    row.price_per_hour = info.price_per_hour
    row.geolocation = info.geolocation
    session.add(row)


def _record_destroyed(
    session: Session, machine_id: str, provider: str, instances: list[DestroyedInstance]
) -> int:
    """Mark instances destroyed, adding any that were created but never recorded (a boot
    cancelled between the create and its record)."""
    written = 0
    for destroyed in instances:
        row = _instance_row(session, provider, destroyed.instance_id)
        if row is None:
            row = ProviderInstanceRecord(
                machine_id=machine_id,
                provider=provider,
                instance_id=destroyed.instance_id,
                label=destroyed.label,
            )
        if row.destroyed_at is None:
            row.destroyed_at = utcnow()
            session.add(row)
            written += 1
    return written


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

# The accounting below is core/savings.py's rule: each helper runs before the event's
# projection (the machine's price is still the instance it ran on) but `_account_cost`, after.


def _serves_standby(machine: Machine, standby: MachineStandby | None) -> bool:
    """The projected instance is the machine's standby (it is on its standby)."""
    return (
        standby is not None
        and standby.instance_id is not None
        and machine.instance_id == standby.instance_id
    )


def _gpu_price(machine: Machine, standby: MachineStandby | None) -> float | None:
    """The GPU's price: the projected instance's, or on the standby the one it left."""
    if _serves_standby(machine, standby):
        return machine.standby_price_per_hour
    return machine.price_per_hour


def _running_price(machine: Machine, standby: MachineStandby | None) -> float | None:
    """What the machine costs per hour up on its GPU: the GPU plus its live standby."""
    gpu = _gpu_price(machine, standby)
    extra = standby.price_per_hour if standby is not None and standby.instance_id else None
    if extra is None:
        return gpu
    return (gpu or 0.0) + extra


def _account_hibernation(
    machine: Machine, state: MachineState, now: datetime, standby: MachineStandby | None = None
) -> None:
    """Open a hibernated period on entering hibernated/deleted (at the price of the instance
    that was destroyed, plus the standby's, which goes too); close it, adding its hours and
    avoided cost, on leaving."""
    if state.value in _HIBERNATED:
        if machine.hibernated_since is None:
            machine.hibernated_since = now
            machine.hibernated_price_per_hour = (
                _running_price(machine, standby) or machine.hibernated_price_per_hour
            )
        return
    if machine.hibernated_since is not None:
        seconds = max((now - machine.hibernated_since).total_seconds(), 0.0)
        machine.hibernated_seconds += seconds
        machine.hibernated_cost_avoided += (
            seconds / 3600.0 * (machine.hibernated_price_per_hour or 0.0)
        )
        machine.hibernated_since = None


def _account_pause(machine: Machine, state: MachineState, now: datetime) -> None:
    """Open a paused period on entering paused (at the price the machine ran at, its stopped
    disk at the disk's price); close it on leaving, adding its hours, the cost avoided and
    what the disk cost meanwhile. A standby keeps billing while paused: not avoided."""
    if state is MachineState.PAUSED:
        if machine.paused_since is None:
            machine.paused_since = now
            machine.paused_price_per_hour = machine.price_per_hour
        return
    if machine.paused_since is not None:
        seconds = max((now - machine.paused_since).total_seconds(), 0.0)
        hours = seconds / 3600.0
        machine.paused_seconds += seconds
        machine.paused_cost_avoided += hours * (machine.paused_price_per_hour or 0.0)
        machine.paused_disk_cost += hours * (machine.disk_price_per_hour or 0.0)
        machine.paused_since = None


def _account_standby(
    machine: Machine, state: MachineState, now: datetime, standby: MachineStandby | None
) -> None:
    """Open a standby period on entering `standby` (at the price of the GPU it left: the
    projection's until this event, unless that is already the standby, as after a failed
    search for a new GPU); close it on leaving, adding its hours and the GPU cost avoided."""
    if state is MachineState.STANDBY:
        if machine.standby_since is None:
            machine.standby_since = now
            machine.standby_price_per_hour = (
                _gpu_price(machine, standby) or machine.standby_price_per_hour
            )
        return
    if machine.standby_since is not None:
        seconds = max((now - machine.standby_since).total_seconds(), 0.0)
        machine.standby_seconds = (machine.standby_seconds or 0.0) + seconds
        machine.standby_cost_avoided = (machine.standby_cost_avoided or 0.0) + (
            seconds / 3600.0 * (machine.standby_price_per_hour or 0.0)
        )
        machine.standby_since = None


def _account_cost(machine: Machine, standby: MachineStandby | None, at: datetime) -> None:
    """The GPU's cost ledger: the open stretch closed at its rate, a new one opened at the
    rate of the projection as it now is (`at` never runs it backwards)."""
    since = machine.billed_since
    if since is not None:
        at = max(at, since)
        hours = (at - since).total_seconds() / 3600.0
        machine.billed_usd = (machine.billed_usd or 0.0) + hours * (machine.billed_per_hour or 0)
    machine.billed_since = at
    machine.billed_per_hour = gpu_per_hour(
        status=machine.status,
        price_per_hour=machine.price_per_hour,
        disk_price_per_hour=machine.disk_price_per_hour,
        serves_standby=_serves_standby(machine, standby),
    )


def _event_data(input: PendingEvent | RecordStateInput) -> dict[str, object]:
    data: dict[str, object] = {"seq": input.seq}
    if input.gpu_utilization is not None:
        data["gpu_utilization"] = input.gpu_utilization
    if input.snapshot_id is not None:
        data["snapshot_id"] = input.snapshot_id
    if input.instance is not None:
        data["instance_id"] = input.instance.instance_id
        data["provider"] = input.instance.provider
    return data


def _machine_row(machine_id: str, owner_id: str, spec: MachineSpec) -> Machine:
    """The projection row for a machine started without the API (the API inserts it first)."""
    return Machine(
        id=machine_id,
        owner_id=owner_id,
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
        declared_ports=list(spec.ports) or None,
        env_names=list(spec.env) or None,  # never the values
        on_start=spec.on_start,
    )


def _project_instance(machine: Machine, info: InstanceInfo | None) -> None:
    machine.instance_id = info.instance_id if info else None
    machine.price_per_hour = info.price_per_hour if info else None
    machine.geolocation = info.geolocation if info else None
    machine.ssh_host = info.ssh_host if info else None
    machine.ssh_port = info.ssh_port if info else None
    machine.ssh_user = info.ssh_user if info else None
    machine.ports = dict(info.ports) if info and info.ports else None
    machine.disk_price_per_hour = info.disk_price_per_hour if info else None


def _instance_row(
    session: Session, provider: str, instance_id: str
) -> ProviderInstanceRecord | None:
    return session.exec(
        select(ProviderInstanceRecord).where(
            ProviderInstanceRecord.provider == provider,
            ProviderInstanceRecord.instance_id == instance_id,
        )
    ).first()
