"""Whole listings through the client's pagers (which fetch pages lazily, so each walk runs on
the calling thread: one executor job per listing), and GCE's timestamps."""

from __future__ import annotations

from datetime import datetime

from google.cloud import compute_v1


def parse_timestamp(value: str) -> datetime | None:
    """GCE's RFC 3339 times (`2024-08-25T22:38:25.897-07:00`); None when absent or garbled."""
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def aggregated_instances(
    *,
    client: compute_v1.InstancesClient,
    request: compute_v1.AggregatedListInstancesRequest,
    timeout: float,
) -> list[compute_v1.Instance]:
    pager = client.aggregated_list(request=request, timeout=timeout)
    return [raw for _scope, scoped in pager for raw in scoped.instances]


def aggregated_operations(
    *,
    client: compute_v1.GlobalOperationsClient,
    request: compute_v1.AggregatedListGlobalOperationsRequest,
    timeout: float,
) -> list[compute_v1.Operation]:
    pager = client.aggregated_list(request=request, timeout=timeout)
    return [op for _scope, scoped in pager for op in scoped.operations]


def zone_operations(
    *,
    client: compute_v1.ZoneOperationsClient,
    request: compute_v1.ListZoneOperationsRequest,
    timeout: float,
) -> list[compute_v1.Operation]:
    return list(client.list(request=request, timeout=timeout))
