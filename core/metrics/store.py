"""Write a batch of samples: raw rows and rollups, on the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table, bindparam, insert

from core.metrics.bulk import BulkStatement
from core.metrics.rollup import rollup_rows, upsert_rollups
from core.metrics.samples import SAMPLE_FIELDS, Sample
from core.models import MetricSample

_samples: Table = MetricSample.__table__  # type: ignore[attr-defined]
_INSERT = BulkStatement(
    _samples, lambda _: insert(_samples).values({name: bindparam(name) for name in SAMPLE_FIELDS})
)


def store_samples(conn: Connection, samples: Sequence[Sample]) -> None:
    if not samples:
        return
    _INSERT.execute(conn, [sample.row() for sample in samples])
    upsert_rollups(conn, rollup_rows(samples))
