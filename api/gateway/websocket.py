"""A WebSocket session through the gateway: the client's Starlette `WebSocket` (already routed
and authorised) relayed to the machine's service as a `websockets` client connection.

The upstream handshake happens first, so the client is accepted with the subprotocol the
service chose (from those the client offered). Text and binary frames are pumped both ways
until either side closes; its close code and reason are passed to the other side. If the
service cannot be reached the client is accepted and closed at once with 1013 (try again
later) and a reason, which every client, a browser included, can read; if the service answers
the handshake with an HTTP refusal (401, 404, ...), the client gets that same answer where the
server supports denial responses (uvicorn does), else a close with 1011.

`proxy_websocket` returns only when both sides are closed and its two pumps have ended, so the
gateway counts the session as an open request by wrapping the call:

    async with traffic.open_request(machine_id):
        outcome = await proxy_websocket(websocket, url, headers)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

log = logging.getLogger(__name__)

# Never relayed: hop-by-hop headers (RFC 9110 §7.6.1), the handshake's own, which each leg
# makes for itself, and Dumont's endpoint key (the gateway also strips a `Bearer dsk_...`).
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
        "x-dumont-key",
    }
)
# Set by the server on the client's leg itself.
_NOT_RETURNED = _NOT_FORWARDED | {"date", "server"}
# uvicorn's own limit on a client's message (ws_max_size); the service gets the same.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# A close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5).
_REASON_BYTES = 123
# Codes a close frame may not carry: 1005 (none given), 1006 (no close frame), 1015 (TLS).
_UNSENDABLE = frozenset({1004, 1005, 1006, 1015})

ClosedBy = Literal["client", "upstream", "gateway"]


@dataclass(frozen=True)
class WebSocketOutcome:
    """How a proxied session ended, for the gateway's logs and counters."""

    accepted: bool  # the service accepted the handshake and frames could flow
    closed_by: ClosedBy
    code: int  # the close code (or the HTTP status of a refused handshake)
    reason: str


def forwardable(
    headers: Iterable[tuple[str, str]], dropped: frozenset[str] = _NOT_FORWARDED
) -> list[tuple[str, str]]:
    """The headers that may travel to the other leg: no hop-by-hop or handshake header, and
    none named in `Connection`."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in pairs if n.lower() not in dropped | named]


async def proxy_websocket(
    client: WebSocket,
    upstream_url: str,
    headers: Iterable[tuple[str, str]],
    *,
    open_timeout: float = 10.0,
    max_message_bytes: int | None = MAX_MESSAGE_BYTES,
) -> WebSocketOutcome:
    """Relay `client` (not yet accepted) to `upstream_url` (`ws://host:port/path?query`) until
    the session ends. `headers` are what the gateway sends the service (the client's, with
    Dumont's key removed and X-Forwarded-* set); hop-by-hop and handshake ones are dropped."""
    offered = [Subprotocol(p) for p in client.scope.get("subprotocols", [])]
    try:
        upstream = await connect(
            upstream_url,
            additional_headers=forwardable(headers),
            subprotocols=offered or None,
            user_agent_header=None,  # the client's own User-Agent travels in `headers`
            proxy=None,  # the machine's address is direct; no proxy from the environment
            open_timeout=open_timeout,
            max_size=max_message_bytes,
        )
    except InvalidStatus as exc:
        return await _refused(client, exc)
    except InvalidHandshake as exc:
        reason = f"the service's WebSocket handshake is invalid: {exc}"
        return await _accept_and_close(client, 1011, reason)
    except (OSError, TimeoutError) as exc:
        reason = f"the service is unreachable: {exc or type(exc).__name__}"
        return await _accept_and_close(client, 1013, reason)

    try:
        returned = upstream.response.headers.raw_items() if upstream.response else []
        await client.accept(subprotocol=upstream.subprotocol, headers=_raw(returned))
        return await _relay(client, upstream)
    finally:
        await upstream.close()


async def _relay(client: WebSocket, upstream: ClientConnection) -> WebSocketOutcome:
    to_upstream = asyncio.create_task(_client_to_upstream(client, upstream), name="ws-proxy up")
    to_client = asyncio.create_task(_upstream_to_client(upstream, client), name="ws-proxy down")
    try:
        done, _ = await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
        if to_upstream in done:
            client_close = to_upstream.result()
            if client_close is None:
                # The service closed while a client frame was on its way: what it sent before
                # closing is still to be relayed.
                await to_client
        else:
            # None: the service closed; otherwise the client vanished while we sent to it.
            client_close = None if to_client.result() else (1006, "")
    finally:
        for task in (to_upstream, to_client):
            task.cancel()
        # Wait for both: nothing of this session may outlive the call.
        await asyncio.gather(to_upstream, to_client, return_exceptions=True)

    if client_close is not None:  # the client closed (or went away) first
        code, reason = client_close
        await upstream.close(_sendable(code, abnormal=1001), reason)
        return WebSocketOutcome(accepted=True, closed_by="client", code=code, reason=reason)
    code = upstream.close_code if upstream.close_code is not None else 1006
    reason = upstream.close_reason or ("the service's connection was lost" if code == 1006 else "")
    await _close(client, _sendable(code, abnormal=1011), reason)
    return WebSocketOutcome(accepted=True, closed_by="upstream", code=code, reason=reason)


async def _client_to_upstream(
    client: WebSocket, upstream: ClientConnection
) -> tuple[int, str] | None:
    """Pump until the client disconnects (its code and reason) or the service closes (None)."""
    try:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return int(message.get("code") or 1005), str(message.get("reason") or "")
            if (text := message.get("text")) is not None:
                await upstream.send(text)
            elif (data := message.get("bytes")) is not None:
                await upstream.send(data)
    except ConnectionClosed:
        return None


async def _upstream_to_client(upstream: ClientConnection, client: WebSocket) -> bool:
    """Pump until the service closes (True), or the client is gone (False)."""
    try:
        async for message in upstream:
            if isinstance(message, str):
                await client.send_text(message)
            else:
                await client.send_bytes(message)
    except ConnectionClosed:
        pass
    except WebSocketDisconnect:
        return False
    return True


def _sendable(code: int, *, abnormal: int) -> int:
    """A code a close frame may carry: none given (1005) is a normal close, and a session
    that ended without a close frame (1006) gets `abnormal`."""
    if code == 1005:
        return 1000
    return abnormal if code in _UNSENDABLE or not 1000 <= code <= 4999 else code


def _raw(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The service's response headers for the client's leg, as ASGI carries them."""
    returned = forwardable(headers, _NOT_RETURNED)
    return [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in returned]


def _truncate(reason: str) -> str:
    return reason.encode()[:_REASON_BYTES].decode(errors="ignore")


async def _close(client: WebSocket, code: int, reason: str) -> None:
    if client.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await client.close(code, _truncate(reason))


async def _accept_and_close(client: WebSocket, code: int, reason: str) -> WebSocketOutcome:
    # Accepted with the client's first choice: a client that insists on a subprotocol (a
    # browser) would otherwise fail the handshake without ever reading the reason.
    offered = client.scope.get("subprotocols") or [None]
    log.info("websocket to the service refused: %s", reason)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await client.accept(subprotocol=offered[0])
    await _close(client, code, reason)
    return WebSocketOutcome(accepted=False, closed_by="gateway", code=code, reason=reason)


async def _refused(client: WebSocket, exc: InvalidStatus) -> WebSocketOutcome:
    """The service answered the handshake with HTTP: the client gets that answer."""
    status = exc.response.status_code
    reason = f"the service refused the WebSocket handshake: HTTP {status}"
    if "websocket.http.response" not in client.scope.get("extensions", {}):
        return await _accept_and_close(client, 1011, reason)
    body = bytes(exc.response.body or b"")
    response = Response(content=body, status_code=status, media_type=None)
    response.raw_headers.extend(_raw(exc.response.headers.raw_items()))
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await client.send_denial_response(response)
    return WebSocketOutcome(accepted=False, closed_by="upstream", code=status, reason=reason)
