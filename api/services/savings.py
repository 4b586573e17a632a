"""Savings of machines as the API shows them: the machine rows' hibernation and pause
bookkeeping plus the storage their committed snapshots take, through `core.savings`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session, col

from core.models import Machine, Snapshot, SnapshotPack, SnapshotPackRef
from core.savings import Periods, Savings, machine_savings
from core.settings import Settings


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
    now = datetime.now(UTC)
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
            closed_disk_cost=m.paused_disk_cost,
            disk_price_per_hour=m.disk_price_per_hour,
            stored_bytes=stored.get(m.id, 0),
            price_per_gb_month=settings.snapshot_price_per_gb_month,
            now=now,
        )
        for m in machines
    }
