"""`GET /api/v1/machines/{id}/metrics`: a machine's history, read from rollups."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Query, Request

from api.deps import OwnedMachine, SessionDep
from api.errors import invalid
from api.ingest.service import Ingest
from api.schemas.common import COMMON_RESPONSES
from api.schemas.metrics import MetricsOut
from core.metrics.query import SERIES_GROUPS, RangeName, SeriesGroup, metrics_history

router = APIRouter(
    prefix="/api/v1/machines",
    tags=["metrics"],
    responses=COMMON_RESPONSES,
)

ALL_GROUPS = ",".join(SERIES_GROUPS)


def _groups(value: str) -> list[SeriesGroup]:
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERIES_GROUPS]
    if unknown or not names:
        raise invalid(
            ("query", "series"),
            f"unknown {', '.join(unknown) or '(none given)'}; use any of {ALL_GROUPS}",
        )
    return cast(list[SeriesGroup], list(dict.fromkeys(names)))


@router.get("/{machine_id}/metrics", response_model=MetricsOut)
def machine_metrics(
    machine: OwnedMachine,
    session: SessionDep,
    request: Request,
    range_name: Annotated[RangeName, Query(alias="range")] = "24h",
    series: Annotated[str, Query(description=f"Comma-separated: {ALL_GROUPS}")] = ALL_GROUPS,
) -> MetricsOut:
    """GPU, VRAM, CPU, RAM, disk and network per bucket: 5 minutes over 24h, an hour over 7d,
    4 hours over 30d."""
    ingest: Ingest = request.app.state.ingest
    history = metrics_history(
        session.connection(), machine.id, range_name, _groups(series), ingest.now()
    )
    return MetricsOut(
        machine_id=machine.id,
        range=history.range,
        step_seconds=history.step_seconds,
        series=history.series,
    )
