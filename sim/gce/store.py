"""The GCE side's saved state (data_dir/gce/state.json), written atomically like sim/store.py."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


class InstanceRecord(BaseModel):
    id: int
    project: str
    zone: str
    name: str
    machine_type: str
    status: str = "PROVISIONING"
    status_message: str | None = None
    created_at: float
    last_start_at: float | None = None
    last_stop_at: float | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    # Metadata items in order, as `{key, value}` pairs.
    metadata: list[dict[str, str]] = Field(default_factory=list)
    metadata_fingerprint: str = ""
    scheduling: dict[str, Any] = Field(default_factory=dict)
    disk_size_gb: int = 10
    disk_type: str = "pd-standard"
    source_image: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    network_ip: str
    # Whether the NIC asked for an external address (an ONE_TO_ONE_NAT access config).
    external: bool = True
    # The loopback address the machine answers on while it runs (its natIP), else None.
    address: str | None = None

    @property
    def spot(self) -> bool:
        return self.scheduling.get("provisioningModel") == "SPOT"


class OperationRecord(BaseModel):
    id: int
    name: str
    project: str
    zone: str
    operation_type: str
    target_link: str
    target_id: int
    status: str = "PENDING"
    progress: int = 0
    inserted_at: float
    started_at: float | None = None
    ended_at: float | None = None
    user: str
    request_id: str | None = None
    status_message: str | None = None
    error: dict[str, Any] | None = None
    http_error_status_code: int | None = None
    http_error_message: str | None = None


class GceState(BaseModel):
    instances: dict[int, InstanceRecord] = Field(default_factory=dict)
    # Operations by name, in insertion order.
    operations: dict[str, OperationRecord] = Field(default_factory=dict)


class GceStore:
    def __init__(self, root: Path) -> None:
        self.path = root / "state.json"

    def load(self) -> GceState:
        if self.path.exists():
            return GceState.model_validate_json(self.path.read_text())
        return GceState()

    def save(self, state: GceState) -> None:
        """Write a temporary file and rename it, so a kill -9 leaves the old or the new state."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(state.model_dump_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
