"""Rollups: per machine and bucket (minute, hour, day), the sum, count, min and max of each
series, merged into the stored bucket with one upsert per batch. Merging sums and counts keeps
averages exact however the samples are split across batches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import ColumnElement

from core.metrics.bulk import BulkStatement
from core.metrics.samples import Sample
from core.models import ROLLUP_SERIES, metric_rollups

MINUTE, HOUR, DAY = 60, 3600, 86400
RESOLUTIONS: tuple[int, ...] = (MINUTE, HOUR, DAY)

BucketKey = tuple[str, int, int]  # machine_id, resolution, bucket_start (epoch seconds)

# (series, its sum, count, min and max columns)
_COLUMNS = [(s, f"{s}_sum", f"{s}_count", f"{s}_min", f"{s}_max") for s in ROLLUP_SERIES]


def _empty_bucket(key: BucketKey) -> dict[str, Any]:
    machine_id, resolution, bucket_start = key
    row: dict[str, Any] = {
        "machine_id": machine_id,
        "resolution": resolution,
        "bucket_start": bucket_start,
    }
    for _, total, count, low, high in _COLUMNS:
        row[total], row[count], row[low], row[high] = 0.0, 0, None, None
    return row


def rollup_rows(samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """The batch's own buckets, one row per (machine, resolution, bucket)."""
    buckets: dict[BucketKey, dict[str, Any]] = {}
    for sample in samples:
        epoch = int(sample.timestamp.timestamp())
        values = [(cols, getattr(sample, cols[0])) for cols in _COLUMNS]
        present = [(cols, float(v)) for cols, v in values if v is not None]
        for resolution in RESOLUTIONS:
            key = (sample.machine_id, resolution, epoch - epoch % resolution)
            row = buckets.get(key)
            if row is None:
                row = buckets[key] = _empty_bucket(key)
            for (_, total, count, low, high), value in present:
                row[total] += value
                row[count] += 1
                if row[low] is None or value < row[low]:
                    row[low] = value
                if row[high] is None or value > row[high]:
                    row[high] = value
    return list(buckets.values())


def _upsert(dialect: Dialect) -> ClauseElement:
    if dialect.name == "sqlite":
        stmt: Any = sqlite.insert(metric_rollups)
        least, greatest = "min", "max"  # SQLite's two-argument scalar min/max
    elif dialect.name == "postgresql":
        stmt = postgresql.insert(metric_rollups)
        least, greatest = "least", "greatest"
    else:
        raise NotImplementedError(f"metrics rollups need SQLite or PostgreSQL, not {dialect.name}")
    stmt = stmt.values({column.name: bindparam(column.name) for column in metric_rollups.c})
    stored, new = metric_rollups.c, stmt.excluded
    zero: ColumnElement[float] = literal_column("0.0")
    merged: dict[str, ColumnElement[Any]] = {}
    for _, total, count, low, high in _COLUMNS:
        merged[total] = func.coalesce(stored[total], zero) + func.coalesce(new[total], zero)
        merged[count] = stored[count] + new[count]
        # coalesce both ways: a NULL side (no reading yet) must not win or poison the result.
        for column, pick in ((low, least), (high, greatest)):
            merged[column] = getattr(func, pick)(
                func.coalesce(stored[column], new[column]),
                func.coalesce(new[column], stored[column]),
            )
    return stmt.on_conflict_do_update(
        index_elements=[stored.machine_id, stored.resolution, stored.bucket_start], set_=merged
    )


_UPSERT = BulkStatement(metric_rollups, _upsert)


def upsert_rollups(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Merge the rows into the stored buckets (SQLite or PostgreSQL upsert)."""
    _UPSERT.execute(conn, rows)
