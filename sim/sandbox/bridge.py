"""The host's loopback services, seen from inside machines' network namespaces.

A process on a machine that connects to 127.0.0.1:P reaches the host's 127.0.0.1:P when
something listens there on the host and P is none of the machine's own ports: the Dumont API
for the agent, an S3 endpoint for snapshots. This is what pasta's `-T auto` is meant to do
(network.py says why it is done here): the host's listening ports are rescanned every second,
a listener on 127.0.0.1:P is opened inside each namespace for each (and closed once the host's
goes away, so the machine may bind P again), and each connection is spliced to the host's port
by two threads: splice(2) keeps the bytes in the kernel, and the sim's event loop stays free.

It lives in the sim process: while the sim is down (a kill -9), machines cannot reach host
services; a restarted sim attaches their namespaces again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sim.sandbox.listening import listening_ports

log = logging.getLogger(__name__)

RESCAN_SECONDS = 1.0
_CLONE_NEWNET = 0x40000000
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20
_DIAL_TIMEOUT = 10.0
T = TypeVar("T")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def in_netns(path: str, work: Callable[[], T]) -> T:
    """Run `work` in a fresh thread that has joined the namespace at `path`; sockets it makes
    stay in that namespace. (Python 3.11 has no os.setns.)"""
    libc = _libc()
    outcome: dict[str, object] = {}

    def run() -> None:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"setns {path}: {os.strerror(code)}")
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            os.close(target)
        # The thread ends here, still in the namespace: it is never reused.

    thread = threading.Thread(target=run, name="netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _listen(ports: set[int]) -> dict[int, socket.socket]:
    opened = {}
    for port in sorted(ports):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            # A machine's own process has it: its service wins, as with pasta.
            if exc.errno != errno.EADDRINUSE:
                log.warning("bridge: cannot listen on %s: %s", port, exc)
            continue
        sock.setblocking(False)
        opened[port] = sock
    return opened


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Move src's bytes to dst until EOF; an error cuts both ways."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, _PIPE_SIZE)
    try:
        while True:
            moved = os.splice(src.fileno(), write_end, _PIPE_SIZE, flags=os.SPLICE_F_MOVE)
            if moved == 0:
                break
            while moved > 0:
                moved -= os.splice(read_end, dst.fileno(), moved, flags=os.SPLICE_F_MOVE)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    finally:
        os.close(read_end)
        os.close(write_end)


class _Links:
    """The open connections of one namespace, to cut them all when it detaches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def carry(self, client: socket.socket, port: int) -> None:
        """Thread body: dial the host's port and splice both ways until both are done."""
        client.setblocking(True)
        with self._lock:
            self._open.add(client)
        try:
            try:
                upstream = socket.create_connection(("127.0.0.1", port), _DIAL_TIMEOUT)
            except OSError:
                return
            with upstream:
                upstream.settimeout(None)
                with self._lock:
                    self._open.add(upstream)
                for sock in (client, upstream):
                    # Small requests (heartbeats) must not wait on Nagle and delayed ACKs.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
                back.start()
                _pump(client, upstream)
                back.join()
                with self._lock:
                    self._open.discard(upstream)
        finally:
            with self._lock:
                self._open.discard(client)
            client.close()

    def cut(self) -> None:
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@dataclass
class _Attached:
    key: str
    path: str
    exclude: frozenset[int]
    listeners: dict[int, socket.socket] = field(default_factory=dict)
    accepting: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    links: _Links = field(default_factory=_Links)
    # The rescan and attach's first sync must not open the same ports twice.
    syncing: asyncio.Lock = field(default_factory=asyncio.Lock)


class LoopbackBridge:
    """Every attached namespace sees the host's loopback ports, but its own."""

    def __init__(self, rescan: float = RESCAN_SECONDS) -> None:
        self._rescan = rescan
        self._attached: dict[str, _Attached] = {}
        self._ticker: asyncio.Task[None] | None = None

    def ports(self, key: str) -> set[int]:
        """The host ports the namespace `key` sees now."""
        attached = self._attached.get(key)
        return set(attached.listeners) if attached else set()

    async def attach(self, key: str, netns_path: str, exclude: set[int]) -> None:
        """From now on, until detach: done before the machine's first process starts, so its
        agent reaches the API at once."""
        await self.detach(key)
        attached = _Attached(key, netns_path, frozenset(exclude))
        self._attached[key] = attached
        await self._sync(attached, listening_ports())
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())

    async def detach(self, key: str) -> None:
        attached = self._attached.pop(key, None)
        if attached is None:
            return
        for port in list(attached.listeners):
            self._close(attached, port)
        attached.links.cut()

    async def close(self) -> None:
        for key in list(self._attached):
            await self.detach(key)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._rescan)
            if not self._attached:
                continue
            ports = listening_ports()
            for attached in list(self._attached.values()):
                try:
                    await self._sync(attached, ports)
                except OSError as exc:
                    log.warning("bridge: %s: %s", attached.path, exc)

    async def _sync(self, attached: _Attached, host_ports: set[int]) -> None:
        async with attached.syncing:
            await self._sync_now(attached, host_ports)

    async def _sync_now(self, attached: _Attached, host_ports: set[int]) -> None:
        wanted = host_ports - attached.exclude
        for port in set(attached.listeners) - wanted:
            self._close(attached, port)
        missing = wanted - set(attached.listeners)
        if not missing:
            return
        opened = await asyncio.to_thread(in_netns, attached.path, lambda: _listen(missing))
        if self._attached.get(attached.key) is not attached:
            for sock in opened.values():  # detached meanwhile
                sock.close()
            return
        for port, sock in opened.items():
            attached.listeners[port] = sock
            task = asyncio.create_task(self._accept(attached, port, sock))
            # Closed once the task is done, after the loop has stopped watching it.
            task.add_done_callback(functools.partial(_close_socket, sock))
            attached.accepting[port] = task

    def _close(self, attached: _Attached, port: int) -> None:
        sock = attached.listeners.pop(port, None)
        task = attached.accepting.pop(port, None)
        if task is not None:
            task.cancel()  # its done callback closes the socket
        elif sock is not None:
            sock.close()

    @staticmethod
    async def _accept(attached: _Attached, port: int, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(sock)
            except OSError as exc:
                log.warning("bridge: %s port %s stops accepting: %s", attached.key, port, exc)
                return
            threading.Thread(
                target=attached.links.carry, args=(client, port), name="bridge", daemon=True
            ).start()


def _close_socket(sock: socket.socket, _: object) -> None:
    sock.close()
