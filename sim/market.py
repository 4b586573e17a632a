"""Offer search over the catalogue: `POST /api/v0/bundles/` and its GET/PUT variants."""

from __future__ import annotations

import time
from typing import Any

from sim.catalogue import OfferSpec, offer_json
from sim.errors import invalid_args
from sim.query import QueryError, offer_predicate, parse_order, sort_rows

DEFAULT_LIMIT = 64
MAX_LIMIT = 10_000
DEFAULT_STORAGE_GB = 5.0
ON_DEMAND = frozenset({"on-demand", "ondemand", "reserved"})
BID = frozenset({"bid", "interruptible"})


def search_offers(
    catalogue: dict[int, OfferSpec], unavailable: set[int], query: dict[str, Any]
) -> list[dict[str, Any]]:
    offer_type = str(query.get("type") or "on-demand").lower()
    if offer_type not in ON_DEMAND | BID:
        raise invalid_args(f"type must be one of on-demand, bid, reserved; got {offer_type!r}")
    try:
        storage = float(query.get("allocated_storage", DEFAULT_STORAGE_GB))
        limit = int(query.get("limit") or DEFAULT_LIMIT)
    except (TypeError, ValueError) as exc:
        raise invalid_args("allocated_storage and limit must be numbers") from exc
    now = time.time()
    rows = [
        offer_json(spec, storage_gb=storage, bid=offer_type in BID, now=now)
        for offer_id, spec in catalogue.items()
        if offer_id not in unavailable
    ]
    if not rows:
        return []
    try:
        matches = offer_predicate(query, rows[0].keys())
        order = parse_order(query.get("order", [["score", "desc"]]))
    except QueryError as exc:
        raise invalid_args(str(exc)) from exc
    # allocated_storage also means "at least this much disk".
    found = [row for row in rows if row["disk_space"] >= storage and matches(row)]
    return sort_rows(found, [*order, ("id", False)])[: max(0, min(limit, MAX_LIMIT))]
