"""vast.ai error responses mapped to the typed provider errors.

vast's error bodies vary by endpoint (`{"success": false, "error", "msg"}`, `{"detail"}`, plain
text), and the status code alone is not enough: a revoked key can come back as HTTP 404 with an
`auth_error` body. So the body's code is read first, the status second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from providers.base import (
    AuthError,
    InstanceNotFound,
    InvalidRequest,
    OfferUnavailable,
    ProviderError,
    RateLimited,
)
from providers.retry import parse_reset_epoch, parse_retry_after

_AUTH_CODES = {"auth_error", "not_authorized", "invalid_user_key"}
_MAX_MSG = 300


class UncertainOutcome(ProviderError):
    """The request may or may not have taken effect (timeout, dropped connection, 5xx).

    A create that ends this way must look for its label before trying again.
    """


class SearchQuotaExceeded(RateLimited):
    """The daily offer-search quota is spent (resets at UTC midnight): retrying burns nothing
    back, so it is never retried."""


class CreatedStopped(ProviderError):
    """A create that failed yet made an instance, left stopped (a bid below the offer's
    minimum): whoever catches it owns `instance_id` and must destroy it."""

    def __init__(self, message: str, *, instance_id: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.retryable = False


def new_contract(response: httpx.Response) -> str | None:
    """The instance id a failed answer still carries (`new_contract`), if any."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    contract = body.get("new_contract") if isinstance(body, dict) else None
    if contract is None or isinstance(contract, bool) or not isinstance(contract, int | str):
        return None
    return str(contract)


@dataclass(frozen=True)
class VastErrorBody:
    code: str | None
    msg: str

    @classmethod
    def read(cls, response: httpx.Response) -> VastErrorBody:
        try:
            body: Any = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return cls(code=None, msg=response.text.strip()[:_MAX_MSG])
        if not isinstance(body, dict):
            return cls(code=None, msg=str(body)[:_MAX_MSG])
        code = body.get("error")
        msg = body.get("msg") or body.get("message") or body.get("detail") or ""
        return cls(code=code if isinstance(code, str) else None, msg=str(msg)[:_MAX_MSG])

    def mentions(self, token: str) -> bool:
        return self.code == token or token in self.msg


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def error_for(response: httpx.Response, what: str, *, api_key: str) -> ProviderError:
    """The typed error for a failed (non-2xx, or `success: false`) vast response."""
    status = response.status_code
    body = VastErrorBody.read(response)
    detail = f"HTTP {status}" + (f" {body.code}" if body.code else "")
    message = redact(
        f"vast: {what} failed ({detail}): {body.msg or response.reason_phrase}", api_key
    )

    if body.code in _AUTH_CODES or status == 401 or "Invalid user key" in body.msg:
        return AuthError(message, status_code=status)
    if status == 429:
        if body.mentions("search_quota_exceeded"):
            return SearchQuotaExceeded(message, retry_after=parse_reset_epoch(response.headers))
        return RateLimited(message, retry_after=parse_retry_after(response.headers))
    if body.mentions("no_such_ask"):
        return OfferUnavailable(message, status_code=status)
    if body.mentions("no_such_instance") or status == 404:
        return InstanceNotFound(message, status_code=status)
    if status == 403:
        # "Offer N is not your own" (host-only offers) is invalid_args; anything else is a key
        # without the right to do this.
        if body.code == "invalid_args":
            return InvalidRequest(message, status_code=status)
        return AuthError(message, status_code=status)
    if status >= 500:
        return UncertainOutcome(message, status_code=status)
    if 400 <= status < 500:
        return InvalidRequest(message, status_code=status)
    error = ProviderError(message, status_code=status)
    error.retryable = False  # a 2xx saying `success: false` will say it again
    return error


def failure_for(response: httpx.Response, what: str, *, api_key: str) -> ProviderError:
    """`error_for`, or `CreatedStopped` when the failure still made an instance (an under-bid
    create answers `success: false` with its `new_contract`)."""
    error = error_for(response, what, api_key=api_key)
    if (contract := new_contract(response)) is not None:
        return CreatedStopped(str(error), instance_id=contract)
    return error
