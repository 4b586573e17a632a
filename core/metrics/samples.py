"""One agent report's numbers, as stored in `metric_samples`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """Unknown readings are None (never 0): they count nowhere in averages."""

    machine_id: str
    timestamp: datetime
    gpu_utilization: float | None = None
    gpu_memory_used_mb: float | None = None
    gpu_memory_total_mb: float | None = None
    cpu_percent: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    disk_used_gb: float | None = None
    disk_total_gb: float | None = None
    net_rx_bytes_per_s: float | None = None
    net_tx_bytes_per_s: float | None = None
    active_users: int | None = None
    process_count: int | None = None

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SAMPLE_FIELDS}


SAMPLE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Sample))
