"""`GET /api/v1/machines/{id}/metrics`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class MetricsOut(BaseModel):
    machine_id: str
    range: str
    step_seconds: int
    series: dict[str, list[tuple[datetime, float | None, float | None]]] = Field(
        description="Per series, `[bucket start, average, maximum]` oldest first; null where "
        "the bucket holds no sample"
    )
