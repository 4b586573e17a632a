"""Backoff policy for provider HTTP calls: exponential with jitter, honouring `Retry-After`."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# Status codes that say "not now" rather than "no": the request was not (or may not have been)
# processed and the same request can succeed later.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries after the first attempt; delays grow by `factor` up to `max_delay`."""

    max_retries: int = 3
    initial_delay: float = 0.2
    factor: float = 2.0
    max_delay: float = 4.0
    # A server asking for a longer wait than this is not waited for: the caller gets the error
    # (with the server's retry_after) and its own scheduler decides when to come back.
    max_retry_after: float = 60.0

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry `retry_number` (0-based)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        base = min(self.max_delay, self.initial_delay * self.factor**retry_number)
        # Equal jitter: keeps at least half the backoff, spreads concurrent clients apart.
        return base / 2 + random.uniform(0, base / 2)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or HTTP date); None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def parse_reset_epoch(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds until an `X-RateLimit-Reset: <unix epoch>` moment (vast's daily search quota)."""
    value = headers.get("x-ratelimit-reset")
    if value is None:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    current = time.time() if now is None else now
    return max(0.0, reset - current)
