"""Retention: raw samples for `DUMONT_METRICS_RAW_RETENTION_HOURS` (48 by default), minute
rollups 8 days, hour rollups 400 days, day rollups for good. A plain function, so the fleet
monitor can run it from an activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import delete
from sqlalchemy.engine import Engine

from core.metrics.rollup import HOUR, MINUTE
from core.models import MetricSample, metric_rollups

MINUTE_ROLLUP_RETENTION = timedelta(days=8)
HOUR_ROLLUP_RETENTION = timedelta(days=400)


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUMONT_METRICS_", extra="ignore")

    raw_retention_hours: float = Field(default=48, gt=0)


@dataclass(frozen=True)
class PruneResult:
    raw_samples: int
    minute_rollups: int
    hour_rollups: int


def prune_metrics(
    engine: Engine, now: datetime, raw_retention: timedelta | None = None
) -> PruneResult:
    """Delete what is past its retention; rollups outlive the raw samples they came from."""
    if raw_retention is None:
        raw_retention = timedelta(hours=MetricsSettings().raw_retention_hours)
    samples = MetricSample.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        raw = conn.execute(delete(samples).where(samples.c.timestamp < now - raw_retention))
        counts = [raw.rowcount]
        for resolution, keep in ((MINUTE, MINUTE_ROLLUP_RETENTION), (HOUR, HOUR_ROLLUP_RETENTION)):
            cutoff = int((now - keep).timestamp())
            result = conn.execute(
                delete(metric_rollups).where(
                    metric_rollups.c.resolution == resolution,
                    metric_rollups.c.bucket_start < cutoff,
                )
            )
            counts.append(result.rowcount)
    return PruneResult(*counts)
