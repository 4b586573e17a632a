"""A WebSocket session through the gateway's proxy: a real `websockets` client, the proxy in a
Starlette app served by real uvicorn on a socket, and a real `websockets` server as the
machine's service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from api.gateway.websocket import WebSocketOutcome, proxy_websocket
from sim.sandbox.network import free_port
from tests.fixtures.serving import port_of, serving

BIG = bytes(range(256)) * (3 * 4096)  # 3 MiB, above websockets' 1 MiB default


@dataclass
class Service:
    """The machine's service: echoes frames; `headers` and `path` tell what it was sent;
    `close CODE REASON` sends a last message and closes with that code."""

    port: int = 0
    closes: asyncio.Queue[tuple[int | None, str | None]] = field(default_factory=asyncio.Queue)

    async def handle(self, ws: ServerConnection) -> None:
        try:
            async for message in ws:
                if message == "headers":
                    assert ws.request is not None
                    await ws.send(json.dumps(list(ws.request.headers.raw_items())))
                elif message == "path":
                    await ws.send(ws.request.path if ws.request else "")
                elif isinstance(message, str) and message.startswith("close "):
                    _, code, reason = message.split(" ", 2)
                    await ws.send("last words")
                    await ws.close(int(code), reason)
                else:
                    await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            self.closes.put_nowait((ws.close_code, ws.close_reason))


def _refuse_private(ws: ServerConnection, request: Request) -> Response | None:
    if request.path.startswith("/private"):
        return ws.respond(HTTPStatus.UNAUTHORIZED, "the service wants a token\n")
    return None


def _pick(ws: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    return next((p for p in offered if p in ("chat.v1", "chat.v2")), None)


@dataclass
class Gateway:
    """Counts open sessions the way the gateway does: around the proxy call."""

    port: int = 0
    server: uvicorn.Server | None = None
    open_sessions: int = 0
    ended: asyncio.Queue[WebSocketOutcome | BaseException] = field(default_factory=asyncio.Queue)

    async def outcome(self) -> WebSocketOutcome:
        """The next session's outcome, once the proxy call has returned."""
        ended = await self.ended.get()
        if isinstance(ended, BaseException):
            raise ended
        return ended


def _proxy_app(upstream_port: int, gateway: Gateway) -> Starlette:
    async def endpoint(websocket: WebSocket) -> None:
        query = websocket.url.query
        url = f"ws://127.0.0.1:{upstream_port}{websocket.url.path}" + (f"?{query}" if query else "")
        # As the gateway: the endpoint key never reaches the service, X-Forwarded-For is set.
        headers = [(k, v) for k, v in websocket.headers.items() if k != "x-dumont-key"]
        headers.append(("x-forwarded-for", websocket.client.host if websocket.client else ""))
        gateway.open_sessions += 1
        try:
            outcome = await proxy_websocket(websocket, url, headers)
        except BaseException as exc:  # the test reads it instead of waiting forever
            gateway.ended.put_nowait(exc)
            raise
        finally:
            gateway.open_sessions -= 1
        gateway.ended.put_nowait(outcome)

    return Starlette(routes=[WebSocketRoute("/{path:path}", endpoint)])


@asynccontextmanager
async def _stack(upstream_port: int | None = None) -> AsyncIterator[tuple[Service, Gateway]]:
    service, gateway = Service(), Gateway()
    async with serve(
        service.handle,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol("chat.v1"), Subprotocol("chat.v2")],
        select_subprotocol=_pick,
        process_request=_refuse_private,
        max_size=None,
    ) as server:
        service.port = upstream_port or server.sockets[0].getsockname()[1]
        async with serving(_proxy_app(service.port, gateway), lifespan="auto") as gateway.server:
            gateway.port = port_of(gateway.server)
            yield service, gateway


def _proxy_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("ws-proxy")]


async def test_frames_flow_both_ways_with_the_chosen_subprotocol_and_the_clients_close() -> None:
    async with _stack() as (service, gateway):
        async with connect(
            f"ws://127.0.0.1:{gateway.port}/chat?room=1",
            subprotocols=[Subprotocol("unknown.v9"), Subprotocol("chat.v1")],
            additional_headers={
                "X-Custom": "yes",
                "Authorization": "Bearer service-token",
                "X-Dumont-Key": "dsk_secret",
            },
            proxy=None,
            max_size=None,
        ) as ws:
            assert ws.subprotocol == "chat.v1"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\xffbinary")
            assert await ws.recv() == b"\x00\xffbinary"
            await ws.send(BIG)
            assert await ws.recv() == BIG
            await ws.send("path")
            assert await ws.recv() == "/chat?room=1"
            await ws.send("headers")
            seen = [(name.lower(), value) for name, value in json.loads(str(await ws.recv()))]
            # The session is an open request for as long as it lasts.
            assert gateway.open_sessions == 1
            await ws.close(4002, "client done")

        assert await service.closes.get() == (4002, "client done")
        outcome = await gateway.outcome()
    assert (outcome.accepted, outcome.closed_by, outcome.code) == (True, "client", 4002)
    assert gateway.open_sessions == 0 and _proxy_tasks() == []
    names = [name for name, _ in seen]
    assert ("x-custom", "yes") in seen
    assert ("authorization", "Bearer service-token") in seen  # the service's own, untouched
    assert ("x-forwarded-for", "127.0.0.1") in seen
    assert "x-dumont-key" not in names
    assert ("sec-websocket-protocol", "unknown.v9, chat.v1") in seen
    # Each leg makes its own handshake: nothing of the client's is sent twice.
    for name in ("host", "sec-websocket-key", "upgrade", "connection", "user-agent"):
        assert names.count(name) <= 1, name


async def test_the_services_close_code_and_last_message_reach_the_client() -> None:
    async with _stack() as (service, gateway):
        async with connect(f"ws://127.0.0.1:{gateway.port}/", proxy=None) as ws:
            assert ws.subprotocol is None
            await ws.send("close 4001 bye")
            assert await ws.recv() == "last words"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        outcome = await gateway.outcome()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye")
    assert (outcome.closed_by, outcome.code, outcome.reason) == ("upstream", 4001, "bye")
    assert gateway.open_sessions == 0 and _proxy_tasks() == []


async def test_a_client_that_vanishes_closes_the_service_side() -> None:
    async with _stack() as (service, gateway):
        async with connect(f"ws://127.0.0.1:{gateway.port}/", proxy=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            ws.transport.abort()  # no close frame: the client's machine went away
        # The service's side ends too, cleanly: uvicorn reports a lost client as "no code"
        # (1005, passed on as 1000), other servers as 1006 (passed on as 1001, going away).
        assert (await service.closes.get())[0] in (1000, 1001)
        outcome = await gateway.outcome()
    assert outcome.closed_by == "client"
    assert gateway.open_sessions == 0 and _proxy_tasks() == []


async def test_a_gateway_shutting_down_closes_both_sides_as_a_restart() -> None:
    async with _stack() as (service, gateway):
        async with connect(f"ws://127.0.0.1:{gateway.port}/", proxy=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            assert gateway.server is not None
            gateway.server.should_exit = True
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert await service.closes.get() == (1012, "")
        outcome = await gateway.outcome()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart
    assert outcome.closed_by == "client"
    assert gateway.open_sessions == 0 and _proxy_tasks() == []


async def test_a_service_that_is_down_gets_the_client_a_clear_close() -> None:
    async with _stack(upstream_port=free_port()) as (_, gateway):
        async with connect(
            f"ws://127.0.0.1:{gateway.port}/",
            subprotocols=[Subprotocol("chat.v1")],
            proxy=None,
        ) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        outcome = await gateway.outcome()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1013  # try again later
    assert "the service is unreachable" in closed.value.rcvd.reason
    assert (outcome.accepted, outcome.closed_by) == (False, "gateway")


async def test_a_handshake_the_service_refuses_reaches_the_client_as_its_answer() -> None:
    async with _stack() as (_, gateway):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{gateway.port}/private", proxy=None):
                pass
        outcome = await gateway.outcome()
    assert refused.value.response.status_code == 401
    assert refused.value.response.body == b"the service wants a token\n"
    assert (outcome.accepted, outcome.code) == (False, 401)
