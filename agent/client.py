"""Posting reports to the API, and keeping those it has not accepted yet.

Reports wait in a bounded buffer (oldest dropped first when it is full) and go out oldest first,
in batches, as soon as the API answers again. Errors back off exponentially with jitter, up to a
cap; a 4xx other than 408/429 means the API will never take that batch, so it is dropped.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from agent.config import DEFAULT_MAX_BUFFERED_REPORTS, AgentConfig

log = logging.getLogger("dumont.agent")

MAX_BATCH_REPORTS = 500  # the API's limit per body
MAX_BATCH_BYTES = 512 * 1024  # half the API's 1 MiB body limit
MAX_BACKOFF_SECONDS = 300.0
_RETRIED_CLIENT_ERRORS = frozenset({408, 429})


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: float | None = None


Post = Callable[[str, str, bytes, float], Answer]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff decides


def post_json(url: str, token: str, body: bytes, timeout: float) -> Answer:
    """POST a JSON body; any HTTP status is an Answer, a network failure raises OSError."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "User-Agent": "dumont-agent",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return Answer(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return Answer(error.code, _retry_after(error.headers.get("Retry-After")))
    except http.client.HTTPException as exc:  # a broken answer is a network failure here
        raise OSError(f"bad HTTP answer: {exc!r}") from exc


class Uploader:
    def __init__(
        self,
        config: AgentConfig,
        post: Post = post_json,
        max_buffered: int = DEFAULT_MAX_BUFFERED_REPORTS,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._url = config.status_url
        self._token = config.token
        interval = float(config.interval_seconds)
        self._timeout = min(10.0, max(1.0, interval))
        self._backoff_base = interval
        self._backoff_cap = max(interval, min(MAX_BACKOFF_SECONDS, 10 * interval))
        self._post = post
        self._clock = clock
        self._jitter = jitter
        self._pending: deque[bytes] = deque(maxlen=max_buffered)  # encoded reports
        self._failures = 0
        self._next_attempt = 0.0
        self.dropped = 0  # reports lost to a full buffer or a refused batch

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, report: dict[str, Any]) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("buffer full: dropped the oldest report (%d so far)", self.dropped)
        self._pending.append(json.dumps(report).encode())

    def flush(self) -> None:
        """Send what is pending, oldest first, unless backing off after an error."""
        while self._pending and self._clock() >= self._next_attempt:
            count, body = self._next_batch()
            try:
                answer = self._post(self._url, self._token, body, self._timeout)
            except OSError as exc:
                self._back_off(f"API unreachable: {exc}", None)
                return
            if 200 <= answer.status < 300:
                self._forget(count)
                if self._failures:
                    log.info("API reachable again")
                self._failures = 0
            elif 400 <= answer.status < 500 and answer.status not in _RETRIED_CLIENT_ERRORS:
                self._forget(count)
                self.dropped += count
                log.error("API refused %d report(s) with HTTP %d: dropped", count, answer.status)
            else:
                self._back_off(f"API answered HTTP {answer.status}", answer.retry_after)
                return

    def _next_batch(self) -> tuple[int, bytes]:
        parts: list[bytes] = []
        size = 0
        for encoded in self._pending:
            if parts and (len(parts) == MAX_BATCH_REPORTS or size + len(encoded) > MAX_BATCH_BYTES):
                break
            parts.append(encoded)
            size += len(encoded) + 1
        if len(parts) == 1:
            return 1, parts[0]
        return len(parts), b'{"samples": [' + b",".join(parts) + b"]}"

    def _forget(self, count: int) -> None:
        for _ in range(count):
            self._pending.popleft()

    def _back_off(self, reason: str, retry_after: float | None) -> None:
        self._failures += 1
        delay = min(self._backoff_cap, self._backoff_base * 2 ** min(self._failures - 1, 20))
        delay *= 0.5 + self._jitter() / 2  # spread a fleet's retries after an outage
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
        self._next_attempt = self._clock() + delay
        log.warning("%s; %d report(s) kept, retrying in %.1fs", reason, len(self._pending), delay)
