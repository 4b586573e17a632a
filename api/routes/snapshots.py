"""`/api/v1/machines/{id}/snapshots` and `/progress`: a machine's committed snapshots with what
they cost to keep, and the snapshot or restore it is running now (for progress bars)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlmodel import select

from api.deps import MachineClientDep, OwnedMachine, SessionDep, SettingsDep
from api.pagination import Page, newest_first
from api.schemas.common import COMMON_RESPONSES
from api.schemas.snapshots import ProgressOut, SnapshotOut
from core.contracts.states import MachineState
from core.models import Snapshot
from core.savings import GB

router = APIRouter(
    prefix="/api/v1/machines",
    tags=["snapshots"],
    responses=COMMON_RESPONSES,
)


@router.get("/{machine_id}/snapshots", response_model=list[SnapshotOut])
def list_snapshots(
    machine: OwnedMachine, session: SessionDep, settings: SettingsDep, page: Page
) -> list[SnapshotOut]:
    """The machine's committed snapshots, newest first."""
    query = select(Snapshot).where(
        Snapshot.machine_id == machine.id,
        Snapshot.owner_id == machine.owner_id,
        Snapshot.status == "committed",
    )
    order = newest_first(Snapshot.committed_at, Snapshot.created_at, Snapshot.id)
    rows = page.rows(session, query, order)
    price = settings.snapshot_price_per_gb_month
    return [
        SnapshotOut(
            id=row.id,
            created_at=row.created_at,
            committed_at=row.committed_at,
            files=row.files,
            size_bytes=row.logical_bytes,
            stored_bytes=row.stored_bytes,
            uploaded_bytes=row.uploaded_bytes,
            root_hash=row.root_hash,
            cost_per_month_usd=round(row.stored_bytes / GB * price, 6),
        )
        for row in rows
    ]


def _count(details: dict[str, Any], key: str) -> int:
    value = details.get(key)
    return value if isinstance(value, int) else 0


@router.get("/{machine_id}/progress", response_model=ProgressOut)
async def progress(machine: OwnedMachine, machines: MachineClientDep) -> ProgressOut:
    """The snapshot (hibernate, snapshot) or restore (wake, restore) in flight, as of its
    last heartbeat; `operation` is null when there is none."""
    found = await machines.operation_in_flight(machine.id)
    if found is None:
        return ProgressOut(state=MachineState(machine.status), operation=None, phase=None)
    operation, details = found
    phase = details.get("phase")
    return ProgressOut(
        state=MachineState(machine.status),
        operation=operation,
        phase=phase if isinstance(phase, str) else None,
        files=_count(details, "files"),
        bytes_scanned=_count(details, "bytes_scanned"),
        bytes_uploaded=_count(details, "bytes_uploaded"),
        bytes_downloaded=_count(details, "bytes_downloaded"),
    )
