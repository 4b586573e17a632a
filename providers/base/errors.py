"""The typed errors every provider raises; `retryable` tells the activities whether another try
may help."""

from __future__ import annotations

from core.contracts.providers import ProviderFeature


class ProviderError(Exception):
    """A provider call failed; `retryable` says whether trying again may help."""

    retryable: bool = True

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class OfferUnavailable(ProviderError):
    """The offer was rented by someone else between search and create."""

    retryable = False


class InstanceNotFound(ProviderError):
    retryable = False


class RateLimited(ProviderError):
    def __init__(
        self, message: str, *, status_code: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class AuthError(ProviderError):
    retryable = False


class InvalidRequest(ProviderError):
    retryable = False


class Unsupported(ProviderError):
    """The provider cannot do this at all (it declared `feature` in its `UNSUPPORTED`); the
    message is the provider's reason, in words for the user."""

    retryable = False

    def __init__(self, reason: str, *, feature: ProviderFeature) -> None:
        super().__init__(reason)
        self.reason = reason
        self.feature = feature
