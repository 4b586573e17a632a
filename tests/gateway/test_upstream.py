"""The gateway's HTTP/1.1 client against a real HTTP server (uvicorn on a socket): answers of
every framing come back whole, a body of unknown length goes out chunked and arrives intact,
connections are kept alive and reused, an idle one the server closed is replaced without the
caller noticing, HEAD answers end at their head, and an address nobody listens on is
`ConnectFailed` (nothing sent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api.gateway.upstream import ConnectFailed, UpstreamPool
from tests.api.conftest import closed_port
from tests.fixtures.serving import port_of, serving

Scope = dict[str, Any]
PEERS: list[tuple[str, int]] = []


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    PEERS.append(scope["client"])
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = b"echo:" + body if body else b"hello"
    headers = [(b"content-length", str(len(answer)).encode()), (b"x-seen", scope["path"].encode())]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    # A keep-alive timeout of one second: idle connections are closed by the server.
    async with serving(app, timeout_keep_alive=1, lifespan="off") as running:
        PEERS.clear()
        yield f"127.0.0.1:{port_of(running)}"


async def read(pool: UpstreamPool, address: str, method: str, path: str, **kw: Any) -> Any:
    response = await pool.request(
        address, method, path.encode(), kw.get("headers", []), kw.get("body")
    )
    body = b"".join([chunk async for chunk in response.chunks()])
    await response.close()
    return response.status, dict(response.headers), body


async def test_answers_come_back_whole_over_kept_alive_connections(server: str) -> None:
    pool = UpstreamPool()
    status, headers, body = await read(pool, server, "GET", "/a%2Fb?x=1")
    assert (status, body, headers[b"x-seen"]) == (201, b"hello", b"/a/b")
    assert (await read(pool, server, "GET", "/chunked"))[2] == b"one two three"

    async def upload() -> AsyncIterator[bytes]:
        for part in (b"x" * 70000, b"", b"tail"):
            yield part

    status, _, body = await read(pool, server, "POST", "/up", body=upload())
    assert status == 201 and body == b"echo:" + b"x" * 70000 + b"tail"
    assert len({port for _, port in PEERS}) == 1  # one connection, reused
    status, headers, body = await read(pool, server, "HEAD", "/")
    assert status == 201 and body == b"" and headers[b"content-length"] == b"5"
    await pool.aclose()


async def test_an_idle_connection_the_server_closed_is_replaced(server: str) -> None:
    pool = UpstreamPool()
    await read(pool, server, "GET", "/")
    await asyncio.sleep(1.5)  # past the server's keep-alive timeout: it closed the connection
    status, _, body = await read(pool, server, "GET", "/")
    assert (status, body) == (201, b"hello")
    assert len({port for _, port in PEERS}) == 2
    await pool.aclose()


async def test_nobody_listening_is_connect_failed() -> None:
    pool = UpstreamPool()
    with pytest.raises(ConnectFailed):
        await pool.request(f"127.0.0.1:{closed_port()}", "GET", b"/", [], None)
