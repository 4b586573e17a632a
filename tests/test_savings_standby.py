"""The standby in a machine's cost and savings (core/savings.py's rule), on SQLite and
PostgreSQL: the record activity's bookkeeping from a machine workflow's outbox, read back as
the API reads it. Up on its GPU a machine with a standby costs GPU + standby; on `standby`
the standby only, and each hour there saves the GPU's price; hibernated, storage only, and
each hour saves GPU + standby. A machine without a standby keeps the figures it had before.

The events carry the workflow's times, set here from `T0` on; the instance records take the
time they are written (about `T0`), so the standby's own cost runs from `T0` and is checked
to within a second's worth of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from activities.records import RecordActivities
from api.services.savings import billing_of, savings_of
from core.accounts import create_user
from core.contracts.activities import DestroyedInstance
from core.contracts.events import EventType
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.records import PendingEvent, PendingRecord, RecordBatchInput
from core.contracts.standby import Side, StandbyConfig, StandbyReason, StandbyStatus
from core.contracts.states import MachineState
from core.db import session_scope
from core.models import Machine
from core.savings import Cost, Savings
from core.settings import Settings

S = MachineState
SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch", disk_gb=40)
GPU_PRICE, DISK_PRICE, STANDBY_PRICE, NEW_GPU_PRICE = 0.50, 0.01, 0.02, 0.60
# Rounding room for the instance records' own clock (written a moment after T0).
CLOCK = 0.001


def gpu(instance_id: str = "777", price: float = GPU_PRICE) -> InstanceInfo:
    return InstanceInfo(
        provider="vast",
        instance_id=instance_id,
        label=f"dumont-m1-{instance_id}",
        offer_id="5001",
        gpu_name="RTX 4090",
        num_gpus=1,
        price_per_hour=price,
        ssh_host="127.0.0.1",
        ssh_port=40022,
        disk_price_per_hour=DISK_PRICE,
    )


STANDBY_VM = InstanceInfo(
    provider="gcp",
    instance_id="sb-9001",
    label="dumont-m1-sb1",
    offer_id="e2-medium@europe-west1-b",
    gpu_name="",
    num_gpus=0,
    price_per_hour=STANDBY_PRICE,
    ssh_host="127.64.1.2",
    ssh_port=2201,
    ssh_user="dumont",
    provider_data={"zone": "europe-west1-b", "machine_type": "e2-medium"},
)
ON_GPU = StandbyStatus(config=StandbyConfig(enabled=True), instance=STANDBY_VM, attempt=1)
ON_CPU = replace(ON_GPU, side=Side.CPU, reason=StandbyReason.GPU_LOST)


class Outbox:
    """A machine workflow's outbox: numbered records, sent in batches."""

    def __init__(self, engine: Engine, machine_id: str = "m1", owner_id: str | None = None) -> None:
        if owner_id is None:
            with session_scope(engine) as session:
                owner_id = create_user(session, f"owner-{machine_id}").id
        self.owner_id = owner_id
        self.records = RecordActivities(engine)
        self.machine_id = machine_id
        self.number = self.seq = 0

    def send(self, *records: PendingRecord) -> None:
        numbered = []
        for record in records:
            self.number += 1
            numbered.append(replace(record, number=self.number))
        self.records.record_batch(
            RecordBatchInput(
                machine_id=self.machine_id, owner_id=self.owner_id, spec=SPEC, records=numbered
            )
        )

    def event(self, state: S, at: datetime, instance: InstanceInfo | None) -> PendingRecord:
        self.seq += 1
        kind = _KINDS.get(state) or EventType(state.value)
        event = PendingEvent(seq=self.seq, event_type=kind, state=state, at=at, instance=instance)
        return PendingRecord(number=0, event=event)


# The event each state is entered with here (accounting reads the state, not the type).
_KINDS = {
    S.STARTING: EventType.PROVISIONING,
    S.FAILING_OVER: EventType.MIGRATING,
    S.STANDBY: EventType.ON_STANDBY,
}


def created(instance: InstanceInfo) -> PendingRecord:
    return PendingRecord(number=0, instance_created=instance)


def destroyed(instance: InstanceInfo) -> PendingRecord:
    gone = DestroyedInstance(instance_id=instance.instance_id, label=instance.label)
    return PendingRecord(number=0, instances_destroyed=[gone], destroyed_provider=instance.provider)


def standby(status: StandbyStatus) -> PendingRecord:
    return PendingRecord(number=0, standby=status)


def billing(engine: Engine, now: datetime, machine_id: str = "m1") -> tuple[Savings, Cost]:
    with Session(engine) as session:
        machine = session.get(Machine, machine_id)
        assert machine is not None
        return billing_of(session, Settings(), machine.owner_id, [machine], now)[machine_id]


@pytest.fixture
def t0() -> datetime:
    return datetime.now(UTC)


def hours(t0: datetime, n: float) -> datetime:
    return t0 + timedelta(hours=n)


def test_a_machine_with_a_standby_costs_gpu_and_standby_running_and_standby_only_on_it(
    engine: Engine, t0: datetime
) -> None:
    box = Outbox(engine)
    box.send(box.event(S.STARTING, t0, None), created(STANDBY_VM), standby(ON_GPU))
    box.send(created(gpu()), box.event(S.RUNNING, t0, gpu()))
    saved, cost = billing(engine, hours(t0, 2))
    assert cost.per_hour_usd == pytest.approx(GPU_PRICE + STANDBY_PRICE)
    assert cost.total_usd == pytest.approx(2 * (GPU_PRICE + STANDBY_PRICE), abs=CLOCK)
    assert (saved.standby_hours, saved.net_usd) == (0, 0)

    # Two hours in the GPU is lost: the standby serves the workspace.
    box.send(box.event(S.FAILING_OVER, hours(t0, 2), gpu()), destroyed(gpu()))
    box.send(standby(ON_CPU), box.event(S.STANDBY, hours(t0, 2), STANDBY_VM))
    saved, cost = billing(engine, hours(t0, 5))
    assert cost.per_hour_usd == pytest.approx(STANDBY_PRICE)
    assert cost.standby_per_hour_usd == pytest.approx(STANDBY_PRICE)
    assert cost.total_usd == pytest.approx(2 * GPU_PRICE + 5 * STANDBY_PRICE, abs=CLOCK)
    # Three hours on the standby saved three of the lost GPU's, the standby taking nothing off.
    assert saved.standby_hours == pytest.approx(3)
    assert saved.cost_avoided_usd == pytest.approx(3 * GPU_PRICE)
    assert saved.net_usd == pytest.approx(3 * GPU_PRICE)

    # A search for a new GPU fails (half an hour on `failing_over`, the standby still serving):
    # the next stretch on standby saves the same GPU price, though the projection was the
    # standby's in between.
    box.send(box.event(S.FAILING_OVER, hours(t0, 5), STANDBY_VM))
    box.send(box.event(S.STANDBY, hours(t0, 5.5), STANDBY_VM))
    box.send(box.event(S.FAILING_OVER, hours(t0, 6), STANDBY_VM), created(gpu("778", 0.6)))
    box.send(standby(ON_GPU), box.event(S.RUNNING, hours(t0, 6.5), gpu("778", NEW_GPU_PRICE)))
    saved, cost = billing(engine, hours(t0, 8))
    assert saved.standby_hours == pytest.approx(3.5)
    assert saved.net_usd == pytest.approx(3.5 * GPU_PRICE)
    assert cost.per_hour_usd == pytest.approx(NEW_GPU_PRICE + STANDBY_PRICE)
    gpus = 2 * GPU_PRICE + 1.5 * NEW_GPU_PRICE
    assert cost.total_usd == pytest.approx(gpus + 8 * STANDBY_PRICE, abs=CLOCK)
    assert cost.standby_usd == pytest.approx(8 * STANDBY_PRICE, abs=CLOCK)
    # The seed's figures (`savings_of`) count the standby's hours too.
    with Session(engine) as session:
        machine = session.get(Machine, "m1")
        assert machine is not None
        seed = savings_of(session, Settings(), box.owner_id, [machine])["m1"]
    assert seed.standby_hours == pytest.approx(3.5, abs=0.1)


def test_an_idle_migration_saves_like_a_hibernation_and_hibernating_saves_the_standby_too(
    engine: Engine, t0: datetime
) -> None:
    box = Outbox(engine)
    box.send(box.event(S.STARTING, t0, None), created(STANDBY_VM), standby(ON_GPU))
    box.send(created(gpu()), box.event(S.RUNNING, t0, gpu()))
    # Idle: moved to the CPU after an hour (a final sync, the GPU released).
    idle = replace(ON_GPU, side=Side.CPU, reason=StandbyReason.IDLE)
    box.send(box.event(S.FAILING_OVER, hours(t0, 1), gpu()), destroyed(gpu()))
    box.send(standby(idle), box.event(S.STANDBY, hours(t0, 1), STANDBY_VM))
    saved, cost = billing(engine, hours(t0, 4))
    assert saved.standby_hours == pytest.approx(3)
    assert saved.net_usd == pytest.approx(3 * GPU_PRICE)
    assert cost.per_hour_usd == pytest.approx(STANDBY_PRICE)

    # Hibernated from the standby (its snapshot empty here): GPU + standby not billed.
    box.send(box.event(S.HIBERNATED, hours(t0, 4), None))
    saved, cost = billing(engine, hours(t0, 6))
    assert (saved.standby_hours, saved.hibernated_hours) == pytest.approx((3, 2))
    assert saved.net_usd == pytest.approx(3 * GPU_PRICE + 2 * (GPU_PRICE + STANDBY_PRICE))
    # Until its removal is recorded the standby still bills: then storage only.
    assert cost.per_hour_usd == pytest.approx(STANDBY_PRICE)
    box.send(destroyed(STANDBY_VM), standby(replace(idle, instance=None)))
    saved, cost = billing(engine, hours(t0, 6))
    assert cost.per_hour_usd == 0
    assert cost.total_usd == pytest.approx(GPU_PRICE, abs=CLOCK)


def test_hibernating_from_the_gpu_saves_the_gpu_and_the_standby(
    engine: Engine, t0: datetime
) -> None:
    box = Outbox(engine)
    box.send(box.event(S.STARTING, t0, None), created(STANDBY_VM), standby(ON_GPU))
    box.send(created(gpu()), box.event(S.RUNNING, t0, gpu()))
    box.send(box.event(S.HIBERNATING, hours(t0, 1), gpu()), destroyed(gpu()))
    box.send(box.event(S.HIBERNATED, hours(t0, 1.5), None))
    box.send(destroyed(STANDBY_VM), standby(replace(ON_GPU, instance=None)))
    saved, cost = billing(engine, hours(t0, 3.5))
    assert saved.hibernated_hours == pytest.approx(2)
    assert saved.net_usd == pytest.approx(2 * (GPU_PRICE + STANDBY_PRICE))
    assert cost.per_hour_usd == 0
    assert cost.total_usd == pytest.approx(1.5 * GPU_PRICE, abs=CLOCK)


def test_a_machine_without_a_standby_keeps_its_figures(engine: Engine, t0: datetime) -> None:
    """Running 2 h, paused 1 h, running 1 h, stopped 1 h, running 1 h, hibernated 2 h: the
    savings are the pause's and the hibernation's at the GPU's price as before standbys."""
    box = Outbox(engine)
    box.send(box.event(S.STARTING, t0, None), created(gpu()), box.event(S.RUNNING, t0, gpu()))
    saved, cost = billing(engine, hours(t0, 1))
    assert cost.per_hour_usd == GPU_PRICE and cost.standby_per_hour_usd == 0
    box.send(box.event(S.PAUSED, hours(t0, 2), gpu()))
    _, cost = billing(engine, hours(t0, 2.5))
    assert cost.per_hour_usd == DISK_PRICE
    box.send(box.event(S.RUNNING, hours(t0, 3), gpu()))
    box.send(box.event(S.STOPPED, hours(t0, 4), gpu()))
    box.send(box.event(S.RUNNING, hours(t0, 5), gpu()))
    box.send(box.event(S.HIBERNATED, hours(t0, 6), None), destroyed(gpu()))
    saved, cost = billing(engine, hours(t0, 8))
    assert (saved.paused_hours, saved.hibernated_hours, saved.standby_hours) == pytest.approx(
        (1, 2, 0)
    )
    assert saved.cost_avoided_usd == pytest.approx(3 * GPU_PRICE)
    assert saved.disk_cost_usd == pytest.approx(DISK_PRICE)
    assert saved.net_usd == pytest.approx(3 * GPU_PRICE - DISK_PRICE)
    # Billed: 4 h of GPU, 2 h of its disk (paused, stopped), nothing hibernated.
    assert cost.total_usd == pytest.approx(4 * GPU_PRICE + 2 * DISK_PRICE)
    assert (cost.per_hour_usd, cost.standby_usd) == (0, 0)
    with Session(engine) as session:
        machine = session.get(Machine, "m1")
        assert machine is not None
        assert (machine.hibernated_price_per_hour, machine.standby_since) == (GPU_PRICE, None)
        assert machine.standby_seconds is None and machine.standby_cost_avoided is None
