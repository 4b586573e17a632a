"""The standby's read model on SQLite and PostgreSQL: `PendingRecord.standby` from a machine
workflow's outbox becomes its `machine_standby` row through `record_batch` (once, in order),
the row reads back as the status it was written from, a standby's destroyed instances are
recorded under their own provider, and owners' defaults round-trip."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from activities.records import RecordActivities
from core.accounts import create_user
from core.contracts.activities import DestroyedInstance
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.records import PendingRecord, RecordBatchInput
from core.contracts.standby import (
    Side,
    StandbyConfig,
    StandbyReason,
    StandbyStatus,
    SyncHealth,
)
from core.db import session_scope
from core.models import Machine, ProviderInstanceRecord
from core.standby.projection import owner_defaults, save_owner_defaults, status_of
from core.standby.table import MachineStandby

SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch", disk_gb=40)
CONFIG = StandbyConfig(
    enabled=True,
    zone="europe-west1-b",
    spot=False,
    disk_gb=200,
    sync_interval_seconds=15,
    excludes=["*.tmp", "cache/"],
    idle_migrate_minutes=25,
)
STANDBY_VM = InstanceInfo(
    provider="gcp",
    instance_id="4411",
    label="dumont-m1-sb1",
    offer_id="e2-medium@europe-west1-b",
    gpu_name="",
    num_gpus=0,
    price_per_hour=0.0335,
    ssh_host="127.64.1.2",
    ssh_port=2201,
    ssh_user="dumont",
    provider_data={"zone": "europe-west1-b", "machine_type": "e2-medium"},
)
SYNCED = datetime(2026, 12, 5, 10, 0, 30, tzinfo=UTC)


def batch(owner_id: str, *records: PendingRecord) -> RecordBatchInput:
    return RecordBatchInput(machine_id="m1", owner_id=owner_id, spec=SPEC, records=list(records))


def row(engine: Engine) -> MachineStandby | None:
    with Session(engine) as session:
        return session.get(MachineStandby, "m1")


def test_the_outbox_writes_the_standby_row_once_in_order(engine: Engine) -> None:
    with session_scope(engine) as session:
        owner_id = create_user(session, "ana").id
    records = RecordActivities(engine)
    linked = StandbyStatus(
        config=CONFIG,
        instance=STANDBY_VM,
        attempt=1,
        linked_instance_id="777",
        health=SyncHealth.HEALTHY,
        last_sync_at=SYNCED,
    )
    first = records.record_batch(batch(owner_id, PendingRecord(number=1, standby=linked)))
    assert (first.applied, first.applied_through) == (1, 1)
    written = row(engine)
    assert written is not None
    assert status_of(written) == StandbyStatus(
        config=CONFIG,
        # What the row keeps of the instance: where it runs, its price, how to log in.
        instance=InstanceInfo(
            provider="gcp",
            instance_id="4411",
            label="",
            offer_id="",
            gpu_name="",
            num_gpus=0,
            price_per_hour=0.0335,
            ssh_host="127.64.1.2",
            ssh_port=2201,
            ssh_user="dumont",
            provider_data={"zone": "europe-west1-b", "machine_type": "e2-medium"},
        ),
        health=SyncHealth.HEALTHY,
        last_sync_at=SYNCED,
    )
    assert (written.instance_zone, written.instance_type) == ("europe-west1-b", "e2-medium")

    moved = datetime(2026, 12, 5, 10, 5, tzinfo=UTC)
    on_standby = StandbyStatus(
        config=CONFIG,
        instance=STANDBY_VM,
        side=Side.CPU,
        reason=StandbyReason.GPU_LOST,
        health=SyncHealth.FAILING,
        last_sync_at=SYNCED,
        sync_error="ssh: connect to host 10.0.0.1 port 22: Connection refused " * 60,
        problem="looking for a GPU: none under $0.50/h yet",
        moved_at=moved,
    )
    # The whole batch again with one new record: only the new one applies.
    again = records.record_batch(
        batch(
            owner_id,
            PendingRecord(number=1, standby=linked),
            PendingRecord(number=2, standby=on_standby),
        )
    )
    assert (again.applied, again.applied_through) == (1, 2)
    written = row(engine)
    assert written is not None
    assert (written.side, written.reason, written.health) == ("cpu", "gpu_lost", "failing")
    assert written.moved_at == moved and written.last_sync_at == SYNCED
    assert written.problem == "looking for a GPU: none under $0.50/h yet"
    assert written.sync_error is not None and len(written.sync_error) == 2000  # the column's

    gone = StandbyStatus(config=StandbyConfig(enabled=False), problem=None)
    records.record_batch(batch(owner_id, PendingRecord(number=3, standby=gone)))
    written = row(engine)
    assert written is not None and not written.enabled
    assert (written.instance_id, written.ssh_host, written.price_per_hour) == (None, None, None)
    assert written.machine_type == "e2-medium" and written.excludes == []
    # A replay of an old record changes nothing.
    records.record_batch(batch(owner_id, PendingRecord(number=2, standby=on_standby)))
    written = row(engine)
    assert written is not None and not written.enabled and written.side == "gpu"


def test_a_standbys_destroyed_instance_is_recorded_under_its_own_provider(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        owner_id = create_user(session, "bea").id
    records = RecordActivities(engine)
    records.record_batch(
        batch(
            owner_id,
            PendingRecord(number=1, instance_created=STANDBY_VM),
            PendingRecord(
                number=2,
                instances_destroyed=[DestroyedInstance(instance_id="4411", label="dumont-m1-sb1")],
                destroyed_provider="gcp",
            ),
            # The machine's own GPU instance: the machine's provider (vast).
            PendingRecord(
                number=3,
                instances_destroyed=[DestroyedInstance(instance_id="4411", label="dumont-m1-1")],
            ),
        )
    )
    with Session(engine) as session:
        rows = session.exec(select(ProviderInstanceRecord)).all()
        assert session.get(Machine, "m1") is not None
    providers = sorted((r.provider, r.instance_id, r.destroyed_at is not None) for r in rows)
    assert providers == [("gcp", "4411", True), ("vast", "4411", True)]


def test_owner_defaults_round_trip(engine: Engine) -> None:
    with session_scope(engine) as session:
        owner_id = create_user(session, "cyd").id
    with session_scope(engine) as session:
        assert owner_defaults(session, owner_id) == (False, StandbyConfig(enabled=True))
        save_owner_defaults(session, owner_id, True, CONFIG)
    with session_scope(engine) as session:
        auto, config = owner_defaults(session, owner_id)
        assert auto is True and config == CONFIG
        save_owner_defaults(
            session, owner_id, False, StandbyConfig(provider="vast", machine_type=None)
        )
    with session_scope(engine) as session:
        auto, config = owner_defaults(session, owner_id)
    assert auto is False
    assert config == StandbyConfig(enabled=True, provider="vast", machine_type=None)
