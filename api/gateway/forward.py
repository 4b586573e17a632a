"""Forwarding one HTTP request to the machine's service and its answer back, both bodies
streamed as they come (no buffering either way: SSE and chunked answers reach the client as
the service writes them), over the gateway's own keep-alive pool (api/gateway/upstream.py).

A connect error means nothing was sent: the caller may hold the request and send it again
(`NotSent`). A client that leaves mid-stream ends the upstream stream too, so that an endless
SSE stream does not stay open, and count as traffic, forever."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.types import Send

from api.gateway.downstream import ClientGone, Downstream
from api.gateway.headers import RawHeaders, downstream_response_headers
from api.gateway.upstream import BodyBroken, ConnectFailed, NoResponse, UpstreamPool

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotSent(Exception):
    """The service could not be reached; nothing of the request was sent."""


class NoAnswer(Exception):
    """The request may have reached the service, which gave no answer (502)."""


class UpstreamBroke(Exception):
    """The service's answer broke off after it began: the client's connection is dropped so
    that it sees a cut answer, not a complete-looking short one."""


async def forward(
    pool: UpstreamPool,
    send: Send,
    downstream: Downstream,
    *,
    method: str,
    address: str,
    target: str,
    headers: RawHeaders,
    extra_headers: RawHeaders,
) -> None:
    has_body = downstream.has_body
    content = downstream.body() if has_body else None
    try:
        response = await pool.request(address, method, target.encode(), headers, content)
    except ConnectFailed as err:
        raise NotSent(str(err)) from err
    except NoResponse as err:
        # Dropped before any answer: a port mapping that accepts, then resets, for a stopped
        # instance. Only a request that is safe to repeat may be tried again.
        if err.sent_nothing or (method in SAFE_METHODS and not has_body):
            raise NotSent(str(err)) from err
        raise NoAnswer(f"the service closed the connection without answering: {err}") from err
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": downstream_response_headers(response.headers) + extra_headers,
            }
        )
        if method == "HEAD" or any(n == b"content-length" for n, _ in response.headers):
            async for chunk in response.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            await _stream_until_gone(response.chunks(), send, downstream)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except BodyBroken as err:
        raise UpstreamBroke(f"the service's answer broke off: {err}") from err
    finally:
        await response.close()


async def _stream_until_gone(
    chunks: AsyncIterator[bytes], send: Send, downstream: Downstream
) -> None:
    """Relay an answer of unknown length until it ends or the client leaves."""
    with contextlib.suppress(TimeoutError, ClientGone):
        async with asyncio.timeout(None) as scope:
            loop = asyncio.get_running_loop()
            downstream.watch(lambda: scope.reschedule(loop.time()))
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await downstream.stop_watching()
