"""A WebSocket session through the gateway: the same route, key and hold queue as HTTP (a
handshake to a paused machine waits for the resume), then the relay (api/gateway/websocket.py),
counted as an open request for as long as it stays open."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import Message, Receive, Scope, Send

from api.gateway import answers
from api.gateway.answers import Refusal
from api.gateway.auth import check_key
from api.gateway.headers import upstream_request_headers
from api.gateway.hold import HOLDS
from api.gateway.routes import Route
from api.gateway.seams import TunnelUnavailable, WebSocketTarget, proxy_websocket
from api.gateway.target import Target

if TYPE_CHECKING:
    from api.gateway.app import Gateway


class HeldHandshake:
    """The client's messages while its handshake is held: `websocket.connect` is kept for the
    relay; a disconnect takes the client out of the queue."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._kept: list[Message] = []
        self._watcher: asyncio.Task[None] | None = None

    def watch(self, on_gone: Callable[[], None]) -> None:
        self._watcher = asyncio.create_task(self._watch(on_gone))

    async def _watch(self, on_gone: Callable[[], None]) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                on_gone()
                return
            self._kept.append(message)

    async def stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def receive(self) -> Message:
        if self._kept:
            return self._kept.pop(0)
        return await self._receive()


async def websocket_session(
    gateway: Gateway, scope: Scope, receive: Receive, send: Send, target: Target | None
) -> None:
    route = await gateway.route(target.machine_id) if target else answers.not_found()
    if isinstance(route, Refusal) or target is None:
        await reject(scope, send, route if isinstance(route, Refusal) else answers.not_found())
        return
    check = check_key(scope["headers"], route.key_hash)
    if not route.public and not check.ok:
        await reject(scope, send, Refusal(status=401, detail=check.detail))
        return
    handshake = HeldHandshake(receive)
    if not route.up:
        if route.state not in HOLDS:
            from api.gateway.app import not_serving

            await reject(scope, send, not_serving(route))
            return
        released = await gateway.holds.wait(route, handshake)
        await handshake.stop_watching()
        if released is None:
            return
        if isinstance(released, Refusal):
            await reject(scope, send, released)
            return
        route = released.route
    await _relay(gateway, scope, send, target, route, handshake, check.drop_authorization)


async def _relay(
    gateway: Gateway,
    scope: Scope,
    send: Send,
    target: Target,
    route: Route,
    handshake: HeldHandshake,
    drop_authorization: bool,
) -> None:
    try:
        address = await gateway.address_of(route)
    except TunnelUnavailable as err:
        await reject(scope, send, Refusal(status=503, detail=str(err)))
        return
    headers = upstream_request_headers(
        scope["headers"],
        client_ip=scope["client"][0] if scope.get("client") else None,
        scheme=scope.get("scheme", "ws"),
        drop_authorization=drop_authorization,
    )
    session = WebSocketTarget(
        machine_id=route.machine_id, address=address, path=target.path_qs, headers=headers
    )
    gateway.traffic.opened(route.machine_id)
    try:
        await proxy_websocket(scope, handshake.receive, send, session)
    finally:
        gateway.traffic.closed(route.machine_id)


async def reject(scope: Scope, send: Send, refusal: Refusal) -> None:
    """An HTTP answer to the handshake where the server can send one (uvicorn can), else a
    close."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = json.dumps({"detail": refusal.detail}).encode()
        headers = [(b"content-type", b"application/json")]
        if refusal.retry_after is not None:
            headers.append((b"retry-after", str(refusal.retry_after).encode()))
        await send(
            {"type": "websocket.http.response.start", "status": refusal.status, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.detail[:120]})
