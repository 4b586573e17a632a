"""Every translation of an internal error into an HTTP answer, in one place.

Route handlers let Temporal and provider errors propagate; the handlers below give each a
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
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.temporal import TemporalUnavailable
from core.contracts.errors import ErrorType
from providers.base import AuthError, ProviderError, RateLimited
from providers.registry import UnknownProvider

log = logging.getLogger(__name__)

# ApplicationError types a workflow raises when the machine's state forbids the action.
CONFLICT_TYPES = frozenset({ErrorType.INVALID_TRANSITION, ErrorType.SUPERSEDED})


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


async def _update_failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WorkflowUpdateFailedError)
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type in CONFLICT_TYPES:
        return _error(409, cause.message)
    message = cause.message if isinstance(cause, ApplicationError) else str(cause)
    return _error(502, f"the action failed: {message}")


async def _update_timed_out(_request: Request, _exc: Exception) -> JSONResponse:
    return _error(504, "the action is still running: retry with ?wait=false and poll the machine")


async def _rpc_failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    if exc.status == RPCStatusCode.NOT_FOUND:
        if "already completed" in exc.message:
            return _error(409, "machine is destroyed")
        return _error(404, "machine not found")
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return _error(503, f"Temporal is unavailable: {exc.message}")
    log.error("Temporal call failed: %s %s", exc.status, exc.message)
    return _error(502, f"Temporal call failed: {exc.message}")


async def _already_started(_request: Request, _exc: Exception) -> JSONResponse:
    return _error(409, "a machine with this id already exists")


async def _provider_failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProviderError)
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
        return _error(503, f"the provider is rate limiting us: {exc}", headers)
    if isinstance(exc, UnknownProvider):
        return _error(503, str(exc))
    if isinstance(exc, AuthError):
        log.error("provider rejected Dumont's credentials: %s", exc)
        return _error(502, "the provider rejected Dumont's credentials; check the API key")
    return _error(502, f"the provider failed: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(TemporalUnavailable, _temporal_unavailable)
    app.add_exception_handler(WorkflowUpdateFailedError, _update_failed)
    app.add_exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError, _update_timed_out)
    app.add_exception_handler(RPCError, _rpc_failed)
    app.add_exception_handler(WorkflowAlreadyStartedError, _already_started)
    app.add_exception_handler(ProviderError, _provider_failed)
