"""Provider errors as Temporal application errors: typed, and retryable only when it may help."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from core.contracts.errors import ErrorType
from providers.base import InstanceNotFound, ProviderError, RateLimited, Unsupported


def as_application_error(exc: ProviderError) -> ApplicationError:
    message = str(exc)
    if isinstance(exc, InstanceNotFound):
        return ApplicationError(message, type=ErrorType.INSTANCE_GONE, non_retryable=True)
    if isinstance(exc, Unsupported):
        return ApplicationError(exc.reason, type=ErrorType.UNSUPPORTED, non_retryable=True)
    if not exc.retryable:
        return ApplicationError(message, type=type(exc).__name__, non_retryable=True)
    if isinstance(exc, RateLimited):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
        return ApplicationError(message, type=ErrorType.RATE_LIMITED, next_retry_delay=delay)
    return ApplicationError(message, type=type(exc).__name__)


@contextmanager
def provider_errors() -> Iterator[None]:
    """Raise provider failures as `ApplicationError`s that carry their retry decision."""
    try:
        yield
    except ProviderError as exc:
        raise as_application_error(exc) from exc
