"""Record activities on SQLite and PostgreSQL: events, the status projection, instance rows."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from activities.records import RecordActivities
from core.accounts import create_user
from core.contracts.activities import (
    DestroyedInstance,
    OwnerKeysInput,
    RecordInstanceInput,
    RecordInstancesDestroyedInput,
    RecordStateInput,
)
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.states import MachineState
from core.db import session_scope
from core.models import Event, Machine, ProviderInstanceRecord, SshKey

SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch", disk_gb=40)
INSTANCE = InstanceInfo(
    provider="vast",
    instance_id="777",
    label="dumont-m1-1",
    offer_id="5001",
    gpu_name="RTX 4090",
    num_gpus=1,
    price_per_hour=0.42,
    geolocation="Lisbon, PT",
    ssh_host="127.0.0.1",
    ssh_port=40022,
    ssh_user="dumont",  # a provider whose instances refuse root
)


def owner(engine: Engine) -> str:
    with session_scope(engine) as session:
        return create_user(session, "ana").id


def state(
    owner_id: str, seq: int, state: MachineState, instance: InstanceInfo | None
) -> RecordStateInput:
    return RecordStateInput(
        machine_id="m1",
        owner_id=owner_id,
        spec=SPEC,
        seq=seq,
        event_type=str(state),
        state=state,
        reason=f"reason {seq}",
        instance=instance,
    )


def test_state_changes_write_events_and_projection_once(engine: Engine) -> None:
    records = RecordActivities(engine)
    owner_id = owner(engine)
    assert records.record_state(state(owner_id, 1, MachineState.STARTING, None)).written == 1
    assert records.record_state(state(owner_id, 2, MachineState.RUNNING, INSTANCE)).written == 1
    # A retry of a write whose answer was lost writes nothing more.
    assert records.record_state(state(owner_id, 2, MachineState.RUNNING, INSTANCE)).written == 0

    with Session(engine) as session:
        machine = session.get(Machine, "m1")
        events = session.exec(select(Event).order_by(col(Event.id))).all()
    assert machine is not None
    assert (machine.status, machine.status_reason) == ("running", "reason 2")
    assert (machine.instance_id, machine.price_per_hour, machine.geolocation) == (
        "777",
        0.42,
        "Lisbon, PT",
    )
    assert (machine.ssh_host, machine.ssh_port, machine.ssh_user) == ("127.0.0.1", 40022, "dumont")
    assert machine.gpu_name == "RTX 4090" and machine.owner_id == owner_id
    assert [(e.state, e.data["seq"]) for e in events] == [("starting", 1), ("running", 2)]

    records.record_state(state(owner_id, 3, MachineState.DESTROYED, None))
    with Session(engine) as session:
        machine = session.get(Machine, "m1")
    assert machine is not None and machine.status == "destroyed"
    assert (machine.instance_id, machine.ssh_host, machine.price_per_hour) == (None, None, None)
    assert machine.ssh_user is None


def test_instances_are_recorded_once_and_marked_destroyed(engine: Engine) -> None:
    records = RecordActivities(engine)
    records.record_state(state(owner(engine), 1, MachineState.STARTING, None))
    records.record_instance(RecordInstanceInput(machine_id="m1", instance=INSTANCE))
    records.record_instance(RecordInstanceInput(machine_id="m1", instance=INSTANCE))
    destroyed = RecordInstancesDestroyedInput(
        machine_id="m1",
        provider="vast",
        # 778 was created by a boot that was cancelled before it could record it.
        instances=[
            DestroyedInstance(instance_id="777", label="dumont-m1-1"),
            DestroyedInstance(instance_id="778", label="dumont-m1-2"),
        ],
    )
    assert records.record_instances_destroyed(destroyed).written == 2
    assert records.record_instances_destroyed(destroyed).written == 0

    with Session(engine) as session:
        rows = session.exec(
            select(ProviderInstanceRecord).order_by(col(ProviderInstanceRecord.id))
        ).all()
    assert [(r.instance_id, r.label, r.offer_id) for r in rows] == [
        ("777", "dumont-m1-1", "5001"),
        ("778", "dumont-m1-2", None),
    ]
    assert all(r.destroyed_at is not None for r in rows)


def test_owner_keys_are_only_the_owners(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        ana, bo = create_user(session, "ana").id, create_user(session, "bo").id
        session.add(
            SshKey(user_id=ana, name="laptop", public_key="ssh-ed25519 AAAA1", fingerprint="f1")
        )
        session.add(SshKey(user_id=bo, name="pc", public_key="ssh-ed25519 AAAA2", fingerprint="f2"))
        session.add(
            SshKey(user_id=ana, name="desk", public_key="ssh-ed25519 AAAA3", fingerprint="f3")
        )
    keys = RecordActivities(sqlite_engine).owner_ssh_keys(OwnerKeysInput(owner_id=ana))
    assert keys.public_keys == ["ssh-ed25519 AAAA1", "ssh-ed25519 AAAA3"]
