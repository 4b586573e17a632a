"""`GET /api/v1/instances/`: filters on stored columns, ordering, keyset pages of at most 25."""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from typing import Any

from sim.errors import VastError, invalid_args
from sim.query import QueryError, column_predicate, parse_order, row_comparator, sort_rows

MAX_PAGE = 25
# Stored columns; computed ones (dph_total, num_gpus ...) are not searchable on vast.ai.
FILTERABLE = frozenset(
    {
        "id",
        "label",
        "actual_status",
        "intended_status",
        "cur_state",
        "next_state",
        "gpu_name",
        "verification",
        "machine_id",
        "host_id",
        "image_uuid",
        "geolocation",
        "status_msg",
        "is_bid",
        "start_date",
    }
)


def _param(raw: str | None, default: Any) -> Any:
    """Query args arrive JSON-encoded, except plain strings which the SDK sends as they are."""
    if raw is None or raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _encode_token(row: dict[str, Any], fields: list[str]) -> str:
    payload = json.dumps({field: row.get(field) for field in fields}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as exc:
        raise VastError(400, "invalid_token", "after_token is not a valid token") from exc
    if not isinstance(value, dict):
        raise VastError(400, "invalid_token", "after_token is not a valid token")
    return value


def list_page(rows: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    filters = _param(params.get("select_filters"), {})
    if not isinstance(filters, dict):
        raise invalid_args("select_filters must be a JSON object")
    try:
        predicate = column_predicate(filters, FILTERABLE)
        order = parse_order(_param(params.get("order_by"), [{"col": "id", "dir": "asc"}]))
    except QueryError as exc:
        raise invalid_args(str(exc)) from exc
    if not any(field == "id" for field, _ in order):
        order.append(("id", False))  # the tiebreaker that makes the cursor exact
    try:
        limit = int(_param(params.get("limit"), MAX_PAGE))
    except (TypeError, ValueError) as exc:
        raise invalid_args("limit must be an integer") from exc
    limit = 5 if limit <= 0 else min(limit, MAX_PAGE)

    matched = sort_rows([row for row in rows if predicate(row)], order)
    start = 0
    token = params.get("after_token")
    if token:
        last = _decode_token(token)
        compare = row_comparator(order)
        start = next((i for i, row in enumerate(matched) if compare(row, last) > 0), len(matched))
    page = matched[start : start + limit]
    more = start + limit < len(matched)
    next_token = _encode_token(page[-1], [field for field, _ in order]) if more and page else None

    columns = _param(params.get("select_cols"), ["*"])
    if isinstance(columns, list) and "*" not in columns:
        page = [{col: row.get(col) for col in ["id", *columns]} for row in page]
    return {
        "success": True,
        "instances_found": len(matched),
        "total_instances": len(rows),
        "label_counts": dict(Counter(row.get("label") or "" for row in rows)),
        "next_token": next_token,
        "instances": page,
    }
