"""Everything the sim must remember across restarts, saved atomically as one JSON file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

STATE_FILE = "state.json"
FIRST_INSTANCE_ID = 20_000_001


class SshKey(BaseModel):
    id: int
    public_key: str
    created_at: float


class InstanceRecord(BaseModel):
    id: int
    offer_id: int
    # The offer's static fields at rent time (hardware, location, list prices).
    offer: dict[str, Any]
    image: str
    label: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    onstart: str | None = None
    args: list[str] | None = None
    runtype: str = "ssh"
    disk_gb: float = 10.0
    bid_price: float | None = None
    api_key: str
    jupyter_token: str
    actual_status: str | None = None
    intended_status: str = "running"
    cur_state: str = "running"
    next_state: str = "running"
    status_msg: str | None = None
    ssh_port: int
    ssh_keys: list[SshKey] = Field(default_factory=list)
    start_date: float
    running_since: float | None = None
    # Faults: the container never starts; the host's GPUs went to someone else.
    fails_to_boot: bool = False
    host_taken: bool = False
    gpu_utilization: float = 0.0
    gpu_memory_used_mb: float = 0.0
    # The machine's own network namespace (None: the host's network) and the host port each
    # declared container port is published on ("8000/tcp" -> 41234), kept from the first
    # boot to destroy, as a container keeps its ports.
    netns: str | None = None
    host_ports: dict[str, int] = Field(default_factory=dict)


class SimState(BaseModel):
    seed: int
    next_instance_id: int = FIRST_INSTANCE_ID
    next_key_id: int = 1
    account_keys: list[SshKey] = Field(default_factory=list)
    # Offers rented by "someone else" (the admin API's take-offer fault).
    taken_offers: list[int] = Field(default_factory=list)
    instances: dict[int, InstanceRecord] = Field(default_factory=dict)

    def rented_offers(self) -> set[int]:
        return {record.offer_id for record in self.instances.values()} | set(self.taken_offers)

    def new_instance_id(self) -> int:
        value = self.next_instance_id
        self.next_instance_id += 1
        return value

    def new_key_id(self) -> int:
        value = self.next_key_id
        self.next_key_id += 1
        return value


class StateStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE

    def load(self, seed: int) -> SimState:
        """The saved state, or a fresh market for `seed` (a saved seed wins: same offers)."""
        if self.path.exists():
            return SimState.model_validate_json(self.path.read_text())
        return SimState(seed=seed)

    def save(self, state: SimState) -> None:
        """Write to a temporary file and rename it, so a kill -9 leaves the old or new state."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(state.model_dump_json(indent=1))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
