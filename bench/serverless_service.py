"""The service the serverless bench runs on its sim machine: a hello-world endpoint, a
streamed one (server-sent events) and a health check, as a bare ASGI app under uvicorn, so the
figures measure the paths in front of it, not the service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HELLO = b"hello from the machine\n"
EVENTS = 5
EVENT_GAP_SECONDS = 0.05


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(EVENTS):
            chunk = f"data: event {n}\n\n".encode()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(EVENT_GAP_SECONDS)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"status": "ok"}' if scope["path"] == "/health" else HELLO
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
