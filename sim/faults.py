"""Injected API failures and latency: the next N matching calls answer 429 or a 5xx."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Literal

from starlette.responses import JSONResponse, PlainTextResponse, Response

BodyKind = Literal["text", "json"]
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class FaultRule:
    id: int
    status: int
    remaining: int
    path_prefix: str | None = None
    method: str | None = None
    body: BodyKind = "text"
    retry_after: float | None = None
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path_prefix or path.startswith(self.path_prefix)

    def response(self) -> Response:
        headers = {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
        if self.status == 429:
            text = self.message or "API requests too frequent"
            if self.body == "json":
                return JSONResponse({"detail": text}, status_code=429, headers=headers)
            return PlainTextResponse(text, status_code=429, headers=headers)
        text = self.message or _REASONS.get(self.status, "Server Error")
        if self.body == "json":
            body = {"success": False, "error": "server_error", "msg": text}
            return JSONResponse(body, status_code=self.status, headers=headers)
        return PlainTextResponse(f"{self.status} {text}", status_code=self.status, headers=headers)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.latency = 0.0
        self._ids = itertools.count(1)

    def add(
        self,
        *,
        status: int,
        count: int,
        path_prefix: str | None,
        method: str | None,
        body: BodyKind,
        retry_after: float | None,
        message: str | None,
    ) -> FaultRule:
        rule = FaultRule(
            next(self._ids), status, count, path_prefix, method, body, retry_after, message
        )
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first armed rule for this call, used up by one."""
        for rule in self.rules:
            if rule.remaining > 0 and rule.matches(method, path):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self.rules.remove(rule)
                return rule
        return None

    def clear(self) -> None:
        self.rules.clear()
