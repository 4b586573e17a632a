"""Every translation of an internal error into an HTTP answer, in one place.

Route handlers let Temporal, provider and database errors propagate; the handlers below give each a
status code and a message a user can act on, and never echo request input (it may hold a
pasted secret).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from temporalio.service import RPCError, RPCStatusCode

from api.temporal import TemporalUnavailable
from core.contracts.errors import ErrorType
from providers.base import AuthError, ProviderError, RateLimited, Unsupported
from providers.registry import UnknownProvider
from workflows.client import (
    ActionFailed,
    ActionRejected,
    MachineDestroyed,
    MachineExists,
    MachineNotFound,
    StillRunning,
)

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly"


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status_code, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One readable line: `num_gpus: Input should be less than or equal to 8; ...`."""
    return "; ".join(
        f"{_field_name(err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in errors
    )


def invalid(loc: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 about one field (`("query", "series")`), in the shape every 422 has."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message}])


def _invalid_body(message: str) -> JSONResponse:
    errors = [{"type": "value_error", "loc": ["body"], "msg": message}]
    return JSONResponse({"detail": errors, "message": validation_message(errors)}, 422)


async def _validation_failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {key: value for key, value in err.items() if key not in ("input", "ctx", "url")}
        for err in exc.errors()
    ]
    return JSONResponse(
        {"detail": jsonable_encoder(errors), "message": validation_message(errors)},
        status_code=422,
    )


async def _temporal_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return _error(503, str(exc))


async def _rejected(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ActionRejected)
    if exc.type == ErrorType.INVALID_INPUT:  # the machine found the body out of range
        return _invalid_body(exc.problem)
    return _error(409, exc.problem)


async def _failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ActionFailed)
    return _error(502, f"the action failed: {exc.problem}")


async def _still_running(_request: Request, _exc: Exception) -> JSONResponse:
    return _error(504, "the action is still running: retry with ?wait=false and poll the machine")


async def _machine_not_found(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MachineNotFound)
    return _error(404, exc.message)


async def _machine_conflict(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MachineDestroyed | MachineExists)
    return _error(409, exc.message)


async def _rpc_failed(_request: Request, exc: Exception) -> JSONResponse:
    """Temporal trouble outside a machine's own answers (MachineClient translated those)."""
    assert isinstance(exc, RPCError)
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return _error(503, f"Temporal is unavailable: {exc.message}")
    log.error("Temporal call failed: %s %s", exc.status, exc.message)
    return _error(502, f"Temporal call failed: {exc.message}")


def is_database_outage(exc: DBAPIError) -> bool:
    """The database cannot be reached (down, restarting, the network cut), as opposed to a
    query it refused."""
    return isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated


async def _database_failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if not is_database_outage(exc):
        raise exc  # a bug, not an outage: the 500 it always was
    # The driver's words only: the statement and its parameters may hold a secret.
    words = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    log.warning("database unavailable: %s", words[0])
    return _error(503, DATABASE_UNAVAILABLE)


async def _provider_failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProviderError)
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
        return _error(503, f"the provider is rate limiting us: {exc}", headers)
    if isinstance(exc, UnknownProvider):
        return _error(503, str(exc))
    if isinstance(exc, Unsupported):  # the provider cannot do this at all: its own reason
        return _error(409, exc.reason)
    if isinstance(exc, AuthError):
        log.error("provider rejected Dumont's credentials: %s", exc)
        return _error(502, "the provider rejected Dumont's credentials; check the API key")
    return _error(502, f"the provider failed: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(TemporalUnavailable, _temporal_unavailable)
    # Every authenticated route reads the token from the database: all of them answer this.
    app.add_exception_handler(DBAPIError, _database_failed)
    app.add_exception_handler(ActionRejected, _rejected)
    app.add_exception_handler(ActionFailed, _failed)
    app.add_exception_handler(StillRunning, _still_running)
    app.add_exception_handler(MachineNotFound, _machine_not_found)
    app.add_exception_handler(MachineDestroyed, _machine_conflict)
    app.add_exception_handler(MachineExists, _machine_conflict)
    app.add_exception_handler(RPCError, _rpc_failed)
    app.add_exception_handler(ProviderError, _provider_failed)
