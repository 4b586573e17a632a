"""Savings and cost of machines as the API shows them: the machine rows' hibernation, pause
and standby bookkeeping and GPU cost ledger, their standbys' rows and instance records, plus
the storage their committed snapshots take, through `core.savings` (whose docstring says the
rule)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session, col

from core.contracts.standby import machine_of_standby_label
from core.models import Machine, ProviderInstanceRecord, Snapshot, SnapshotPack, SnapshotPackRef
from core.savings import (
    Cost,
    Ledger,
    Periods,
    Savings,
    StandbyInstance,
    gpu_per_hour,
    machine_cost,
    machine_savings,
)
from core.settings import Settings
from core.standby.table import MachineStandby


def stored_bytes_by_machine(
    session: Session, owner_id: str, machine_ids: Sequence[str]
) -> dict[str, int]:
    """Pack bytes each machine's committed snapshots reference, a pack shared by two of its
    snapshots counted once (as `core.snapshots.cost` counts them)."""
    if not machine_ids:
        return {}
    rows = session.execute(
        select(col(Snapshot.machine_id), col(SnapshotPack.id), col(SnapshotPack.size))
        .join(SnapshotPackRef, col(SnapshotPackRef.snapshot_id) == col(Snapshot.id))
        .join(SnapshotPack, col(SnapshotPack.id) == col(SnapshotPackRef.pack_id))
        .where(
            col(Snapshot.owner_id) == owner_id,
            col(Snapshot.status) == "committed",
            col(Snapshot.machine_id).in_(list(machine_ids)),
        )
        .distinct()
    ).all()
    stored: dict[str, int] = {}
    for machine_id, _pack_id, size in rows:
        stored[machine_id] = stored.get(machine_id, 0) + int(size)
    return stored


def savings_of(
    session: Session, settings: Settings, owner_id: str, machines: Sequence[Machine]
) -> dict[str, Savings]:
    """Each of the owner's machines' savings now, with one query for all their snapshots."""
    stored = stored_bytes_by_machine(session, owner_id, [m.id for m in machines])
    return _savings(settings, machines, stored, datetime.now(UTC))


def _savings(
    settings: Settings, machines: Sequence[Machine], stored: dict[str, int], now: datetime
) -> dict[str, Savings]:
    return {
        m.id: machine_savings(
            hibernated=Periods(
                closed_seconds=m.hibernated_seconds,
                closed_cost_avoided=m.hibernated_cost_avoided,
                open_since=m.hibernated_since,
                open_price_per_hour=m.hibernated_price_per_hour,
            ),
            paused=Periods(
                closed_seconds=m.paused_seconds,
                closed_cost_avoided=m.paused_cost_avoided,
                open_since=m.paused_since,
                open_price_per_hour=m.paused_price_per_hour,
            ),
            standby=Periods(
                closed_seconds=m.standby_seconds or 0.0,
                closed_cost_avoided=m.standby_cost_avoided or 0.0,
                open_since=m.standby_since,
                open_price_per_hour=m.standby_price_per_hour,
            ),
            closed_disk_cost=m.paused_disk_cost,
            disk_price_per_hour=m.disk_price_per_hour,
            stored_bytes=stored.get(m.id, 0),
            price_per_gb_month=settings.snapshot_price_per_gb_month,
            now=now,
        )
        for m in machines
    }


def _standby_instances(
    session: Session, machine_ids: list[str]
) -> dict[str, list[StandbyInstance]]:
    """Every standby instance each machine has had (recorded when made, marked destroyed when
    removed): label `dumont-{machine}-sb{n}`."""
    rows = session.scalars(
        select(ProviderInstanceRecord).where(
            col(ProviderInstanceRecord.machine_id).in_(machine_ids),
            col(ProviderInstanceRecord.label).like("dumont-%-sb%"),
        )
    ).all()
    out: dict[str, list[StandbyInstance]] = {}
    for row in rows:
        if machine_of_standby_label(row.label) != row.machine_id:
            continue
        out.setdefault(row.machine_id, []).append(
            StandbyInstance(
                price_per_hour=row.price_per_hour,
                created_at=row.created_at,
                destroyed_at=row.destroyed_at,
            )
        )
    return out


def billing_of(
    session: Session,
    settings: Settings,
    owner_id: str,
    machines: Sequence[Machine],
    now: datetime | None = None,
) -> dict[str, tuple[Savings, Cost]]:
    """Each machine's savings and cost at `now` (default: now), with one query per table for
    all of them."""
    ids = [m.id for m in machines]
    if not ids:
        return {}
    now = now or datetime.now(UTC)
    stored = stored_bytes_by_machine(session, owner_id, ids)
    savings = _savings(settings, machines, stored, now)
    standbys = {
        row.machine_id: row
        for row in session.scalars(
            select(MachineStandby).where(col(MachineStandby.machine_id).in_(ids))
        ).all()
    }
    instances = _standby_instances(session, ids)
    out: dict[str, tuple[Savings, Cost]] = {}
    for m in machines:
        standby = standbys.get(m.id)
        live = standby if standby is not None and standby.instance_id is not None else None
        cost = machine_cost(
            status=m.status,
            gpu_now_per_hour=gpu_per_hour(
                status=m.status,
                price_per_hour=m.price_per_hour,
                disk_price_per_hour=m.disk_price_per_hour,
                serves_standby=live is not None and m.instance_id == live.instance_id,
            ),
            ledger=Ledger(
                closed_usd=m.billed_usd or 0.0,
                since=m.billed_since,
                per_hour=m.billed_per_hour or 0.0,
            ),
            standby_price_per_hour=live.price_per_hour if live is not None else None,
            standby_instances=instances.get(m.id, []),
            savings=savings[m.id],
            stored_bytes=stored.get(m.id, 0),
            price_per_gb_month=settings.snapshot_price_per_gb_month,
            now=now,
        )
        out[m.id] = (savings[m.id], cost)
    return out
