"""Shapes every resource shares: errors, the answer to an action not waited for, the response
blocks each router documents, and the region rule of machine and offer filters."""

from __future__ import annotations

from typing import Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, Field, field_validator

from core.regions import countries_for

Responses = dict[int | str, dict[str, Any]]

# The largest id an INTEGER column (PostgreSQL's, 4 bytes) holds: an id past it names no row,
# and the database refuses to compare with it.
DB_INT_MAX = 2**31 - 1
# Prices a marketplace could ask, in USD per hour: beyond, a filter is a typo.
MAX_PRICE_PER_HOUR = 1000.0
# The most GPU memory a filter may ask for, GB.
MAX_VRAM_GB = 2048.0


def _storable(value: object) -> object:
    """Text PostgreSQL can store: it holds no NUL character, and refuses a query with one."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("may not contain a NUL character (\\u0000)")
    return value


# For a path or query parameter: `Annotated[str, Query(...), NO_NUL]`.
NO_NUL = AfterValidator(_storable)


class ApiInput(BaseModel):
    """What a request brings (a body, a query string): its text must be storable."""

    _no_nul = field_validator("*", mode="after")(_storable)


def row_id(what: str) -> Any:
    """A path id of a database row: 1 up to what the column holds."""
    return Path(ge=1, le=DB_INT_MAX, description=f"The {what}'s id")


class ErrorOut(BaseModel):
    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the field")
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """Every 422: each invalid field, and all of them in one readable line."""

    detail: list[FieldError]
    message: str = Field(examples=["num_gpus: Input should be less than or equal to 8"])


class ActionAccepted(BaseModel):
    """Answer to an action sent with `?wait=false`: the machine accepted it; poll `status_url`
    (the machine) to see it progress."""

    machine_id: str
    action: str
    status_url: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED: Responses = {401: _error("Missing or invalid token")}
# Every authenticated route needs the database; most need Temporal too.
UNAVAILABLE: Responses = {503: _error("The database or Temporal is unreachable")}
AUTHENTICATED: Responses = {**UNAUTHORIZED, **UNAVAILABLE}
COMMON_RESPONSES: Responses = {
    **UNAUTHORIZED,
    404: _error("No such machine (or not yours)"),
    **UNAVAILABLE,
}
CONFLICT: Responses = {409: _error("The machine's state forbids this")}
ACTION_RESPONSES: Responses = {
    202: {"model": ActionAccepted, "description": "Accepted (`?wait=false`)"},
    **CONFLICT,
}
INVALID: Responses = {
    422: {"model": ValidationErrorOut, "description": "Out of range or unknown field"}
}


def normalise_region(value: str | None) -> str | None:
    """A region code or ISO country code, upper-cased; ValueError names the valid codes."""
    if value is None:
        return None
    countries_for(value)
    return value.strip().upper()
