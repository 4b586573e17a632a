"""Answers the gateway gives itself (a refusal, a keep-alive path while paused), as raw ASGI
messages: small JSON bodies `{"detail": ...}` like the API's, and `Retry-After` where trying
again later will work."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.types import Send

# How long a client should wait before trying again, by cause.
RETRY_QUEUE_FULL = 5  # held requests drain as soon as the machine is up
RETRY_RESUME_FAILED = 30  # the next request tries the resume again
RETRY_TIMED_OUT = 10  # the resume usually goes on in the workflow: it may be up by then
RETRY_RESTARTING = 1  # another gateway process (or this one, restarted) takes it
RETRY_UNAVAILABLE = 5  # the database or Temporal did not answer


@dataclass(frozen=True, kw_only=True, slots=True)
class Refusal:
    """A request the gateway answers itself instead of forwarding."""

    status: int
    detail: str
    retry_after: int | None = None


def not_found(detail: str = "no serverless endpoint for this machine") -> Refusal:
    return Refusal(status=404, detail=detail)


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def send_refusal(send: Send, refusal: Refusal, *, unauthorized: bool = False) -> None:
    headers = []
    if refusal.retry_after is not None:
        headers.append((b"retry-after", str(refusal.retry_after).encode()))
    if unauthorized:
        headers.append((b"www-authenticate", b'Bearer realm="dumont-serverless"'))
    await send_json(send, refusal.status, {"detail": refusal.detail}, headers)
