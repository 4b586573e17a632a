"""vast.ai's query objects: `{field: {op: value}}` filters and `[[field, dir]]` orders.

Clients send numbers as strings ("0.1"), booleans as JSON or strings, and use the server's
aliases (geolocation by country code, reliability2, dphtotal, *_GB fields ...). This module
turns such a query into a predicate over plain dict rows.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin")
OP_ALIASES = {"=": "eq", "==": "eq", "!=": "neq", "noteq": "neq", "nin": "notin", "not in": "notin"}

# Keys of the search body that steer the search rather than filter rows.
CONTROL_KEYS = frozenset({"order", "limit", "type", "allocated_storage", "disable_bundling"})

FIELD_ALIASES = {
    "reliability2": "reliability",
    "dphtotal": "dph_total",
    "dph": "dph_total",
    "gpu_totalram": "gpu_total_ram",
    "ubuntu_version": "os_version",
    "cuda_vers": "cuda_max_good",
    "dlperf_usd": "dlperf_per_dphtotal",
    "flops_usd": "flops_per_dphtotal",
    "display_active": "gpu_display_active",
    "target_reliability": "expected_reliability",
}
GB_FIELDS = {"cpu_ram_GB": "cpu_ram", "gpu_ram_GB": "gpu_ram", "gpu_totalram_GB": "gpu_total_ram"}


class QueryError(ValueError):
    """The query cannot be understood; answered as 400 invalid_args."""


Row = dict[str, Any]
Predicate = Callable[[Row], bool]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int | float):
        return bool(value)
    return None


def _normalise(actual: Any, wanted: Any) -> tuple[Any, Any]:
    """Bring the filter value to the row value's type, as vast's server coerces them."""
    if isinstance(actual, bool):
        return actual, _boolean(wanted)
    if isinstance(actual, int | float):
        return float(actual), _number(wanted)
    if isinstance(actual, str):
        return actual.casefold(), None if wanted is None else str(wanted).casefold()
    return actual, wanted


def compare(actual: Any, op: str, wanted: Any) -> bool:
    if op in ("in", "notin"):
        values = wanted if isinstance(wanted, list) else [wanted]
        hit = any(compare(actual, "eq", value) for value in values)
        return hit if op == "in" else not hit
    if wanted is None or actual is None:
        same = wanted is None and actual is None
        return same if op == "eq" else (not same if op == "neq" else False)
    left, right = _normalise(actual, wanted)
    if right is None:
        return op == "neq"
    if op == "eq":
        return bool(left == right)
    if op == "neq":
        return bool(left != right)
    try:
        if op == "gt":
            return bool(left > right)
        if op == "gte":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        if op == "lte":
            return bool(left <= right)
    except TypeError:
        return False
    raise QueryError(f"unknown operator {op!r}")


def _ops(field: str, condition: Any) -> list[tuple[str, Any]]:
    if not isinstance(condition, dict):
        # A bare value is taken as equality, as lenient clients send it.
        return [("eq", condition)]
    result = []
    for raw_op, value in condition.items():
        op = OP_ALIASES.get(raw_op, raw_op)
        if op not in OPS:
            raise QueryError(f"unknown operator {raw_op!r} for {field}")
        result.append((op, value))
    return result


def _country(row: Row) -> str | None:
    geo = row.get("geolocation")
    return str(geo).strip()[-2:].upper() if geo else None


def _driver_number(value: Any) -> Any:
    if isinstance(value, str) and value.count(".") == 2:
        major, minor, patch = (part.zfill(3) for part in value.split("."))
        return int(major + minor + patch)
    return value


@dataclass(frozen=True)
class _Getter:
    read: Callable[[Row], Any]
    convert: Callable[[Any], Any] = lambda value: value


def _offer_getter(field: str, known: frozenset[str]) -> _Getter | None:
    """How an offer search field is read from a row (aliases and virtual fields)."""
    if field == "geolocation":
        return _Getter(_country, lambda value: value.upper() if isinstance(value, str) else value)
    if field == "datacenter":
        return _Getter(lambda row: row.get("hosting_type") == 1)
    if field == "duration":
        return _Getter(lambda row: (row.get("end_date") or 0) - time.time())
    if field == "driver_version":
        return _Getter(lambda row: row.get("driver_vers"), _driver_number)
    if field in GB_FIELDS:
        source = GB_FIELDS[field]
        return _Getter(lambda row: (row.get(source) or 0) / 1000.0)
    name = FIELD_ALIASES.get(field, field)
    if name in known:
        return _Getter(lambda row: row.get(name))
    return None


def offer_predicate(query: dict[str, Any], known_fields: Iterable[str]) -> Predicate:
    """All filters of an offer search body; unknown fields are ignored, as vast.ai does."""
    known = frozenset(known_fields)
    checks: list[Predicate] = []
    for field, condition in query.items():
        if field in CONTROL_KEYS:
            continue
        getter = _offer_getter(field, known)
        if getter is None:
            log.warning("offer search: ignoring unknown field %r", field)
            continue
        for op, value in _ops(field, condition):
            checks.append(_check(getter, op, value))
    return lambda row: all(check(row) for check in checks)


def _check(getter: _Getter, op: str, value: Any) -> Predicate:
    wanted = (
        [getter.convert(v) for v in value] if isinstance(value, list) else getter.convert(value)
    )
    return lambda row: compare(getter.read(row), op, wanted)


def column_predicate(filters: dict[str, Any], allowed: frozenset[str]) -> Predicate:
    """Filters on stored columns only (instance listing); others are a 400 as on vast.ai."""
    checks: list[Predicate] = []
    for field, condition in filters.items():
        if field not in allowed:
            raise QueryError(f"{field} is not a valid search key")
        for op, value in _ops(field, condition):
            checks.append(_check(_column(field), op, value))
    return lambda row: all(check(row) for check in checks)


def _column(name: str) -> _Getter:
    return _Getter(lambda row: row.get(name))


def parse_order(order: Any) -> list[tuple[str, bool]]:
    """`[["score","desc"]]` (or one pair, or "field-") -> [(field, descending)]."""
    if order is None:
        return []
    if isinstance(order, str):
        order = [order]
    if isinstance(order, list) and len(order) == 2 and all(isinstance(x, str) for x in order):
        if order[1].lower() in ("asc", "desc"):
            order = [order]
    result = []
    for item in order if isinstance(order, list) else []:
        if isinstance(item, list | tuple) and item:
            field = str(item[0])
            descending = len(item) > 1 and str(item[1]).lower() == "desc"
        elif isinstance(item, dict) and "col" in item:
            field = str(item["col"])
            descending = str(item.get("dir", "asc")).lower() == "desc"
        elif isinstance(item, str):
            descending = item.endswith("-") or item.startswith("-")
            field = item.strip("+-")
        else:
            raise QueryError(f"cannot read order item {item!r}")
        result.append((FIELD_ALIASES.get(field, field), descending))
    return result


def _cmp_values(a: Any, b: Any) -> int:
    # Missing values sort last whatever the direction's sign, as SQL's NULLS LAST.
    if a is None or b is None:
        return 0 if a is b else (1 if a is None else -1)
    try:
        return (a > b) - (a < b)
    except TypeError:
        return (str(a) > str(b)) - (str(a) < str(b))


def row_comparator(order: list[tuple[str, bool]]) -> Callable[[Row, Row], int]:
    def compare_rows(left: Row, right: Row) -> int:
        for field, descending in order:
            a, b = left.get(field), right.get(field)
            result = _cmp_values(a, b)
            if result and a is not None and b is not None and descending:
                result = -result
            if result:
                return result
        return 0

    return compare_rows


def sort_rows(rows: list[Row], order: list[tuple[str, bool]]) -> list[Row]:
    return sorted(rows, key=functools.cmp_to_key(row_comparator(order)))
