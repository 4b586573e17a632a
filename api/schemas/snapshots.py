"""`/api/v1/machines/{id}/snapshots` and `/progress`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from core.contracts.states import MachineState


class SnapshotOut(BaseModel):
    id: str
    created_at: datetime
    committed_at: datetime | None
    files: int
    size_bytes: int = Field(description="The workspace's size")
    stored_bytes: int = Field(description="Compressed pack bytes it references")
    uploaded_bytes: int = Field(description="New bytes it put in the store")
    root_hash: str | None
    cost_per_month_usd: float


class ProgressOut(BaseModel):
    """The snapshot or restore a machine has in flight (none: operation null)."""

    state: MachineState
    operation: Literal["snapshot", "restore"] | None
    phase: str | None
    files: int = 0
    bytes_scanned: int = 0
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
