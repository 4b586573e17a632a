"""Compute Engine failures as the typed provider errors.

Errors come two ways: synchronously, as a `google.api_core` exception built from the HTTP
status (the reason is in `exc.errors[0]["reason"]`, a dict), or inside a finished operation
(`error.errors[].code` plus `httpErrorStatusCode`), which is where stockouts and most quota
errors arrive.
"""

from __future__ import annotations

from google.api_core import exceptions as google
from google.cloud import compute_v1

from providers.base import (
    AuthError,
    InstanceNotFound,
    InvalidRequest,
    OfferUnavailable,
    ProviderError,
    RateLimited,
)

STOCKOUT_CODES = frozenset(
    {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"}
)
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED", "quotaExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RESOURCE_EXHAUSTED"})
_MAX_MESSAGE = 300


class ZoneExhausted(OfferUnavailable):
    """The zone has no capacity for this machine type now (a stockout): another zone may."""

    def __init__(self, message: str, *, zone: str) -> None:
        super().__init__(message, status_code=503)
        self.zone = zone


class QuotaExceeded(ProviderError):
    """The project's quota (CPUs, addresses, disk) is spent: trying again will not help until
    someone raises the quota or frees some."""

    retryable = False


class AlreadyExists(ProviderError):
    """An instance of that name exists in the zone (an earlier try made it)."""

    retryable = False


class FingerprintStale(ProviderError):
    """Labels or metadata changed since they were read (412): read again and retry."""


def _reason(exc: google.GoogleAPICallError) -> str | None:
    for error in exc.errors or []:
        if isinstance(error, dict) and error.get("reason"):
            return str(error["reason"])
    return exc.reason


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def from_api_error(exc: google.GoogleAPICallError, what: str) -> ProviderError:
    """The typed error for a synchronous failure of `what`."""
    reason = _reason(exc)
    message = _clip(
        f"gcp: {what} failed ({exc.code} {reason or type(exc).__name__}): {exc.message}"
    )
    status = int(exc.code) if exc.code is not None else None
    if isinstance(exc, google.NotFound):
        return InstanceNotFound(message, status_code=status)
    if isinstance(exc, google.Conflict):
        return AlreadyExists(message, status_code=status)
    if isinstance(exc, google.PreconditionFailed):
        return FingerprintStale(message, status_code=status)
    if isinstance(exc, google.TooManyRequests) or reason in RATE_REASONS:
        return RateLimited(message, status_code=status)
    if reason in QUOTA_CODES:
        return QuotaExceeded(message, status_code=status)
    if isinstance(exc, google.Unauthorized | google.Forbidden):
        return AuthError(message, status_code=status)
    if isinstance(exc, google.BadRequest):
        return InvalidRequest(message, status_code=status)
    if isinstance(exc, google.ServiceUnavailable) and reason in STOCKOUT_CODES:
        return ZoneExhausted(message, zone="")
    return ProviderError(message, status_code=status)  # 5xx and the rest: try again


def from_operation(
    operation: compute_v1.Operation, what: str, *, zone: str
) -> ProviderError | None:
    """The error a finished operation ended with, or None when it succeeded. An operation
    with `error.errors` but no HTTP status still failed (GCE sets both; this does not rely
    on it, unlike the client's own `result()`)."""
    errors = list(operation.error.errors) if operation.error else []
    if not errors and not operation.http_error_status_code:
        return None
    codes = {error.code for error in errors}
    detail = "; ".join(f"{e.code}: {e.message}" for e in errors) or operation.http_error_message
    status = operation.http_error_status_code or None
    message = _clip(f"gcp: {what} failed in {zone} ({status or '?'}): {detail}")
    if codes & STOCKOUT_CODES:
        return ZoneExhausted(message, zone=zone)
    if codes & QUOTA_CODES:
        return QuotaExceeded(message, status_code=status)
    if codes & RATE_REASONS:
        return RateLimited(message, status_code=status)
    if status == 404:
        return InstanceNotFound(message, status_code=status)
    if status is not None and 400 <= status < 500:
        error = ProviderError(message, status_code=status)
        error.retryable = False
        return error
    return ProviderError(message, status_code=status)
