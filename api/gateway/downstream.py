"""The client's side of one request: its body, read once and streamed on, and whether the
client went away. ASGI gives one `receive` for both, so only one reader may call it at a time:
the body stream while it forwards, else a watcher task (while the request is held, reading a
bounded amount of body ahead; once the body is read, waiting for the disconnect)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.types import Receive

# Body read ahead while a request is held; past it the watcher stops reading (TCP holds the
# rest back) and a disconnect is noticed once forwarding reads again.
READ_AHEAD_BYTES = 1 << 20


class ClientGone(Exception):
    """The client disconnected."""


class Downstream:
    __slots__ = ("_receive", "_chunks", "_buffered", "body_done", "gone", "_on_gone", "_watcher")

    def __init__(self, receive: Receive, *, has_body: bool) -> None:
        self._receive = receive
        self._chunks: list[bytes] = []
        self._buffered = 0
        self.body_done = not has_body
        self.gone = False
        self._on_gone: Callable[[], None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def _read(self) -> bytes:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self._left()
            raise ClientGone
        if not message.get("more_body", False):
            self.body_done = True
        body: bytes = message.get("body", b"")
        return body

    def _left(self) -> None:
        self.gone = True
        if self._on_gone is not None:
            self._on_gone()

    @property
    def has_body(self) -> bool:
        """Body left to forward (read ahead, or still to read)."""
        return bool(self._chunks) or not self.body_done

    async def body(self) -> AsyncIterator[bytes]:
        """The request body, for the upstream request (what was read ahead first)."""
        await self.stop_watching()
        while self._chunks:
            yield self._chunks.pop(0)
        while not self.body_done:
            chunk = await self._read()
            if chunk:
                yield chunk

    def watch(self, on_gone: Callable[[], None]) -> None:
        """Call `on_gone` when the client disconnects (at once if it already did)."""
        self._on_gone = on_gone
        if self.gone:
            on_gone()
        elif self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        with contextlib.suppress(ClientGone):
            while not self.body_done and self._buffered < READ_AHEAD_BYTES:
                chunk = await self._read()
                if chunk:
                    self._chunks.append(chunk)
                    self._buffered += len(chunk)
            if not self.body_done:
                return
            while True:
                await self._read()  # only a disconnect comes once the body is read

    async def stop_watching(self) -> None:
        """Stop the watcher while it reads the body (a cancelled `receive` loses nothing:
        uvicorn hands a message over only once its wait returned)."""
        self._on_gone = None
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def close(self) -> None:
        await self.stop_watching()
