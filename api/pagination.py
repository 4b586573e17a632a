"""Pages of a list route: `?limit=` and `?cursor=`, the next page's URL in a
`Link: <...>; rel="next"` header, and the body the same JSON array as without paging.

Stored lists are paged by keyset on their sort columns, (created_at, id) or their natural
order, so a row written meanwhile never shifts a page; the cursor is the last row's key,
opaque to clients. A ranked result computed per request (offers) is paged by position.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import BigInteger, ColumnElement, and_, or_
from sqlmodel import Session, col
from sqlmodel.sql.expression import SelectOfScalar

from api.schemas.common import DB_INT_MAX

T = TypeVar("T")

# What a BIGINT column holds (INTEGER's is DB_INT_MAX): a key beyond is no row of this list,
# and the database refuses to compare with it.
BIGINT_MAX = 2**63 - 1

MAX_LIMIT = 1000
CURSOR_HELP = 'Where the page starts: follow the previous page\'s `Link: <...>; rel="next"` header'


@dataclass(frozen=True)
class Keyset:
    """The columns a list is sorted by, all one way; together they identify a row."""

    columns: tuple[Any, ...]
    descending: bool

    def order_by(self) -> list[ColumnElement[Any]]:
        return [col(c).desc() if self.descending else col(c).asc() for c in self.columns]

    def after(self, key: Sequence[Any]) -> ColumnElement[bool]:
        """Rows sorted after `key`: beyond it on the first column, or equal there and beyond
        it on the next, and so on."""
        clauses = []
        for i, column in enumerate(self.columns):
            beyond = col(column) < key[i] if self.descending else col(column) > key[i]
            equal = [col(c) == v for c, v in zip(self.columns[:i], key[:i], strict=True)]
            clauses.append(and_(*equal, beyond))
        return or_(*clauses)

    def key_of(self, row: object) -> list[Any]:
        return [getattr(row, c.key) for c in self.columns]

    def types(self) -> list[type]:
        # A TypeDecorator (UtcDateTime, sqlmodel's AutoString) says its type through its impl.
        return [getattr(c.type, "impl", c.type).python_type for c in self.columns]

    def int_max(self) -> list[int]:
        """The largest value each column holds (what an integer in a cursor may be)."""
        return [BIGINT_MAX if isinstance(c.type, BigInteger) else DB_INT_MAX for c in self.columns]


def newest_first(*columns: Any) -> Keyset:
    return Keyset(columns, descending=True)


def oldest_first(*columns: Any) -> Keyset:
    return Keyset(columns, descending=False)


def _invalid_cursor(why: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", "cursor"), "msg": f"Value error, {why}"}]
    )


def encode_cursor(key: Sequence[Any]) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str, types: Sequence[type], int_max: Sequence[int] | None = None
) -> list[Any]:
    """The key a cursor names, each value of its column's type; a 422 naming `cursor` if it
    is not one this list made."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_cursor("not a cursor of this list") from None
    if not isinstance(values, list) or len(values) != len(types):
        raise _invalid_cursor("not a cursor of this list")
    limits = int_max or [DB_INT_MAX] * len(types)
    key: list[Any] = []
    for value, kind, limit in zip(values, types, limits, strict=True):
        if kind is int and type(value) is int and abs(value) > limit:
            raise _invalid_cursor("not a cursor of this list")
        if kind is datetime and isinstance(value, str):
            try:
                key.append(datetime.fromisoformat(value))
            except ValueError:
                raise _invalid_cursor("not a cursor of this list") from None
        elif kind in (int, float, str) and type(value) is kind and "\x00" not in str(value):
            key.append(value)
        else:
            raise _invalid_cursor("not a cursor of this list")
    return key


class Pager:
    """One page of a list route: what the query string asked for, and where the next page's
    link goes."""

    def __init__(self, request: Request, response: Response, limit: int, cursor: str | None):
        self.request = request
        self.response = response
        self.limit = limit
        self.cursor = cursor

    def _link_next(self, key: Sequence[Any]) -> None:
        url = self.request.url.include_query_params(cursor=encode_cursor(key))
        self.response.headers["Link"] = f'<{url}>; rel="next"'

    def rows(self, session: Session, query: SelectOfScalar[T], keyset: Keyset) -> list[T]:
        """This page of the query's rows, in the keyset's order."""
        if self.cursor is not None:
            query = query.where(
                keyset.after(decode_cursor(self.cursor, keyset.types(), keyset.int_max()))
            )
        rows = list(session.exec(query.order_by(*keyset.order_by()).limit(self.limit + 1)))
        if len(rows) > self.limit:
            rows = rows[: self.limit]
            self._link_next(keyset.key_of(rows[-1]))
        return rows

    @property
    def offset(self) -> int:
        """Where this page starts in a ranked result (paged by position)."""
        if self.cursor is None:
            return 0
        [offset] = decode_cursor(self.cursor, [int])
        if offset < 0:
            raise _invalid_cursor("not a cursor of this list")
        return int(offset)

    def window(self, ranked: Sequence[T]) -> list[T]:
        """This page of a ranked result fetched from the start up to at least
        `offset + limit + 1` items."""
        end = self.offset + self.limit
        if len(ranked) > end:
            self._link_next([end])
        return list(ranked[self.offset : end])


def pager(default: int) -> Callable[..., Pager]:
    """A dependency for a list route whose page holds `default` items unless `?limit=` says."""

    # A default value, not `Annotated`: postponed annotations cannot see `default`.
    limit_query = Query(
        default, ge=1, le=MAX_LIMIT, description=f"Items per page (at most {MAX_LIMIT})"
    )

    def dependency(
        request: Request,
        response: Response,
        limit: int = limit_query,
        cursor: Annotated[str | None, Query(max_length=1000, description=CURSOR_HELP)] = None,
    ) -> Pager:
        return Pager(request, response, limit, cursor)

    return dependency


# Lists that had no limit before paging: a default page holds all that they showed.
Page = Annotated[Pager, Depends(pager(MAX_LIMIT))]
