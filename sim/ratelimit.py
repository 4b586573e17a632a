"""vast.ai's per-endpoint minimum interval between calls, keyed by caller, endpoint and method.

Thresholds are the documented `x-rate-limit.threshold` values in seconds; `scale` shrinks them
for tests. Off unless the sim is started with rate limiting.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from starlette.responses import JSONResponse, PlainTextResponse, Response


@dataclass(frozen=True)
class Endpoint:
    name: str
    methods: frozenset[str]
    pattern: re.Pattern[str]
    threshold: float
    json_body: bool = False


ENDPOINTS = (
    Endpoint("create_instance", frozenset({"PUT"}), re.compile(r"^/api/v0/asks/\d+/?$"), 4.5, True),
    Endpoint("show_instance", frozenset({"GET"}), re.compile(r"^/api/v0/instances/\d+/?$"), 2.0),
    Endpoint("list_instances", frozenset({"GET"}), re.compile(r"^/api/v1/instances/?$"), 1.0),
    Endpoint("manage_instance", frozenset({"PUT"}), re.compile(r"^/api/v0/instances/\d+/?$"), 1.0),
    Endpoint(
        "destroy_instance", frozenset({"DELETE"}), re.compile(r"^/api/v0/instances/\d+/?$"), 3.0
    ),
    Endpoint(
        "reboot_instance", frozenset({"PUT"}), re.compile(r"^/api/v0/instances/reboot/\d+/?$"), 1.0
    ),
    Endpoint("create_ssh_key", frozenset({"POST"}), re.compile(r"^/api/v0/ssh/?$"), 1.0),
    # "10 per minute per IP"
    Endpoint("search_offers", frozenset({"GET", "POST"}), re.compile(r"^/api/v0/bundles/?$"), 6.0),
)


class RateLimiter:
    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._last: dict[tuple[str, str, str], float] = {}

    def check(self, method: str, path: str, caller: str) -> Response | None:
        """None when the call may go ahead, else vast's 429."""
        endpoint = next(
            (e for e in ENDPOINTS if method in e.methods and e.pattern.match(path)), None
        )
        if endpoint is None:
            return None
        threshold = endpoint.threshold * self.scale
        key = (caller, endpoint.name, method)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < threshold:
            text = f"API requests too frequent endpoint threshold={endpoint.threshold:g}"
            if endpoint.json_body:
                return JSONResponse({"detail": text}, status_code=429)
            return PlainTextResponse(text, status_code=429)
        self._last[key] = now
        return None
