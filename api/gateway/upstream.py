"""A lean HTTP/1.1 client for the gateway's hot path: keep-alive connections per service
address, requests written as bytes, answers parsed by httptools (the C parser uvicorn uses).

httpx cost ~1.5 ms of CPU per proxied request here, most of it in its pool's bookkeeping (a
poll() of every idle connection on every request) and its model layers; a proxy needs none of
that. Bodies stay streams both ways: a request body of unknown length goes out chunked, an
answer's body is handed on as it arrives (de-chunked, never decoded)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import AsyncIterator

import httptools

from api.gateway.headers import RawHeaders

CONNECT_SECONDS = 5.0
# Idle connections kept per address, and for how long: below the keep-alive timeouts of
# common servers (uvicorn's is 5 s), so that a reused connection is rarely one just closed.
IDLE_PER_ADDRESS = 64
IDLE_SECONDS = 4.0
_READ = 65536


class ConnectFailed(Exception):
    """No connection to the service: nothing of the request was sent."""


class NoResponse(Exception):
    """The connection broke before the answer's head arrived (the request may have been
    sent); `sent_nothing` when not one byte of it left."""

    def __init__(self, message: str, *, sent_nothing: bool = False) -> None:
        super().__init__(message)
        self.sent_nothing = sent_nothing


class BodyBroken(Exception):
    """The answer broke off after its head."""


class _Parser:
    """httptools callbacks gathered into the answer's head and its body chunks."""

    def __init__(self) -> None:
        self.headers: RawHeaders = []
        self.head_done = False
        self.keep_alive = False
        self.done = False
        self.chunks: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.head_done = True
        # Asked here: once the message is complete the parser has moved on and says no.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


class Response:
    """An answer whose head has arrived; its body is read with `chunks()`. `close()` gives the
    connection back when the answer was read to its end and may be reused."""

    def __init__(
        self, pool: UpstreamPool, address: str, conn: _Connection, state: _Parser, head_only: bool
    ) -> None:
        self._pool = pool
        self._address = address
        self._conn: _Connection | None = conn
        self._state = state
        self._head_only = head_only
        self.status: int = state.parser.get_status_code()
        self.headers = state.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        state, conn = self._state, self._conn
        assert conn is not None
        if self._head_only:
            return
        while True:
            if state.chunks:
                pending, state.chunks = state.chunks, []
                for chunk in pending:
                    yield chunk
            if state.done:
                return
            try:
                data = await conn.reader.read(_READ)
            except OSError as err:
                raise BodyBroken(str(err) or type(err).__name__) from err
            if not data:
                with contextlib.suppress(httptools.HttpParserError):
                    state.parser.feed_data(b"")  # an answer that ends with its connection
                if state.chunks or state.done:
                    continue
                raise BodyBroken("the service closed the connection mid-answer")
            try:
                state.parser.feed_data(data)
            except httptools.HttpParserError as err:
                raise BodyBroken(f"the service's answer is not HTTP: {err}") from err

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        state = self._state
        if state.done and not self._head_only and state.keep_alive:
            self._pool._give_back(self._address, conn)
        else:
            conn.close()


class UpstreamPool:
    def __init__(self) -> None:
        self._idle: dict[str, deque[_Connection]] = {}

    async def _connect(self, host: str, port: int) -> _Connection:
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                reader, writer = await asyncio.open_connection(host, port, limit=_READ)
        except (OSError, TimeoutError) as err:
            raise ConnectFailed(str(err) or type(err).__name__) from err
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    def _take_idle(self, address: str) -> _Connection | None:
        idle = self._idle.get(address)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable() and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    def _give_back(self, address: str, conn: _Connection) -> None:
        idle = self._idle.setdefault(address, deque())
        if len(idle) >= IDLE_PER_ADDRESS or not conn.usable():
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def request(
        self,
        address: str,
        method: str,
        target: bytes,
        headers: RawHeaders,
        body: AsyncIterator[bytes] | None,
    ) -> Response:
        """Send the request and wait for the answer's head. A body of unknown length goes out
        chunked. A reused connection that turns out closed is replaced once, for a request
        without a body (nothing else can be sent twice)."""
        conn = self._take_idle(address)
        reused = conn is not None
        if conn is None:
            host, _, port = address.rpartition(":")
            conn = await self._connect(host.strip("[]"), int(port))
        try:
            return await self._exchange(address, conn, method, target, headers, body)
        except NoResponse as err:
            if not (reused and body is None):
                raise
            # The service closed that idle connection as it was taken: once more, on a new one.
            host, _, port = address.rpartition(":")
            fresh = await self._connect(host.strip("[]"), int(port))
            try:
                return await self._exchange(address, fresh, method, target, headers, None)
            except NoResponse as again:
                raise again from err

    async def _exchange(
        self,
        address: str,
        conn: _Connection,
        method: str,
        target: bytes,
        headers: RawHeaders,
        body: AsyncIterator[bytes] | None,
    ) -> Response:
        chunked = body is not None and not any(n == b"content-length" for n, _ in headers)
        head = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", address.encode(), b"\r\n"]
        for name, value in headers:
            if name != b"expect":  # the body follows at once: no 100-continue to wait for
                head += [name, b": ", value, b"\r\n"]
        if chunked:
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        sent_any = False
        try:
            conn.writer.write(b"".join(head))
            sent_any = True
            if body is not None:
                async for chunk in body:
                    if chunked and chunk:
                        conn.writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    elif chunk:
                        conn.writer.write(chunk)
                    await conn.writer.drain()
                if chunked:
                    conn.writer.write(b"0\r\n\r\n")
            await conn.writer.drain()
            state = _Parser()
            while not state.head_done:
                data = await conn.reader.read(_READ)
                if not data:
                    raise NoResponse("the service closed the connection without answering")
                state.parser.feed_data(data)
        except NoResponse:
            conn.close()
            raise
        except (OSError, httptools.HttpParserError) as err:
            conn.close()
            raise NoResponse(str(err) or type(err).__name__, sent_nothing=not sent_any) from err
        except BaseException:
            conn.close()  # cancelled (the client left) or the body's source failed
            raise
        return Response(self, address, conn, state, head_only=method == "HEAD")

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
