"""What an owner's snapshots cost per month: stored pack bytes × price per GB-month."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.db import session_scope
from core.models import Snapshot, SnapshotPack, SnapshotPackRef
from core.snapshots.policy import SnapshotPolicy

GB = 1_000_000_000


@dataclass(frozen=True)
class StorageCost:
    owner_id: str
    stored_bytes: int  # every pack of the owner's in the store: what the provider bills
    monthly_cost: float
    # Bytes each machine's committed snapshots reference (shared packs count for each).
    machine_bytes: dict[str, int]

    def machine_monthly_cost(self, machine_id: str, price_per_gb_month: float) -> float:
        return self.machine_bytes.get(machine_id, 0) / GB * price_per_gb_month


def storage_cost(db: Engine, policy: SnapshotPolicy, owner_id: str) -> StorageCost:
    with session_scope(db) as session:
        stored = session.execute(
            select(func.coalesce(func.sum(SnapshotPack.size), 0)).where(
                col(SnapshotPack.owner_id) == owner_id, col(SnapshotPack.state) == "uploaded"
            )
        ).scalar_one()
        per_machine = session.execute(
            select(col(Snapshot.machine_id), col(SnapshotPack.id), col(SnapshotPack.size))
            .join(SnapshotPackRef, col(SnapshotPackRef.snapshot_id) == col(Snapshot.id))
            .join(SnapshotPack, col(SnapshotPack.id) == col(SnapshotPackRef.pack_id))
            .where(col(Snapshot.owner_id) == owner_id, col(Snapshot.status) == "committed")
            .distinct()
        ).all()
    machine_bytes: dict[str, int] = {}
    for machine_id, _pack_id, size in per_machine:
        machine_bytes[machine_id] = machine_bytes.get(machine_id, 0) + int(size)
    return StorageCost(
        owner_id,
        int(stored),
        int(stored) / GB * policy.price_per_gb_month,
        machine_bytes,
    )
