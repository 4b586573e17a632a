"""Shapes every resource shares: errors, the answer to an action not waited for, the response
blocks each router documents, and the region rule of machine and offer filters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from core.regions import countries_for

Responses = dict[int | str, dict[str, Any]]


class ErrorOut(BaseModel):
    detail: str


class ValidationErrorOut(BaseModel):
    detail: list[dict[str, Any]]
    message: str


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
