"""Forwarding one HTTP request to the machine's service and its answer back, both bodies
streamed as they come (no buffering either way: SSE and chunked answers reach the client as
the service writes them). One shared httpx client holds the connection pool.

A connect error means nothing was sent: the caller may hold the request and send it again
(`NotSent`). A client that leaves mid-stream ends the upstream stream too, so that an endless
SSE stream does not stay open, and count as traffic, forever."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from starlette.types import Send

from api.gateway.downstream import ClientGone, Downstream
from api.gateway.headers import RawHeaders, downstream_response_headers

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore imports sniffio for every lock and cancel shield it makes, several per request,
    # and a module that is not installed is searched for on all of sys.path each time (~30 µs
    # apiece on the warm path). Marked missing, the import fails at once, with the same answer.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

# No read or write timeout: a stream (or a long inference) may stay quiet for minutes.
TIMEOUT = httpx.Timeout(None, connect=5.0, pool=30.0)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LIMITS = httpx.Limits(max_connections=2000, max_keepalive_connections=200, keepalive_expiry=30)


class NotSent(Exception):
    """The service could not be reached; nothing of the request was sent."""


class NoAnswer(Exception):
    """The request may have reached the service, which gave no answer (502)."""


class UpstreamBroke(Exception):
    """The service's answer broke off after it began: the client's connection is dropped so
    that it sees a cut answer, not a complete-looking short one."""


def new_client() -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        timeout=TIMEOUT,
        limits=LIMITS,
        follow_redirects=False,
        trust_env=False,
        # Shared by every client of every machine: it must keep no cookies.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )
    for name in ("accept", "accept-encoding", "user-agent"):
        del client.headers[name]  # the service gets the client's headers, not httpx's
    return client


async def forward(
    http: httpx.AsyncClient,
    send: Send,
    downstream: Downstream,
    *,
    method: str,
    url: str,
    headers: RawHeaders,
    extra_headers: RawHeaders,
) -> None:
    has_body = downstream.has_body
    content = downstream.body() if has_body else None
    request = http.build_request(method, url, headers=headers, content=content)
    try:
        response = await http.send(request, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        raise NotSent(str(err) or type(err).__name__) from err
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as err:
        # Dropped before any answer: a port mapping that accepts, then resets, for a stopped
        # instance. Only a request that is safe to repeat may be tried again.
        if method in SAFE_METHODS and not has_body:
            raise NotSent(str(err) or type(err).__name__) from err
        raise NoAnswer(f"the service closed the connection without answering: {err}") from err
    except httpx.HTTPError as err:
        raise NoAnswer(f"the service did not answer: {err or type(err).__name__}") from err
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": downstream_response_headers(response.headers.raw) + extra_headers,
            }
        )
        if "content-length" in response.headers or method == "HEAD":
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            await _stream_until_gone(response, send, downstream)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except httpx.HTTPError as err:
        raise UpstreamBroke(f"the service's answer broke off: {err}") from err
    finally:
        await response.aclose()


async def _stream_until_gone(response: httpx.Response, send: Send, downstream: Downstream) -> None:
    """Relay an answer of unknown length until it ends or the client leaves."""
    with contextlib.suppress(TimeoutError, ClientGone):
        async with asyncio.timeout(None) as scope:
            loop = asyncio.get_running_loop()
            downstream.watch(lambda: scope.reschedule(loop.time()))
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await downstream.stop_watching()
