"""Reaching a machine's service over Dumont's own SSH connection (`via_ssh: true`).

A provider publishes a declared port on its public address (vast.ai maps it for anyone);
a service that must not be exposed binds the machine's loopback instead, and the gateway
reaches it through a local port forward over SSH, as `ssh -L` does. One SSH connection per
machine carries every forward to it and is kept between requests; it is rebuilt when the
machine's SSH address or login user changes (a resume on a new host, or on another provider)
or the connection is gone.

A forward whose connection died unnoticed (a host that vanished without a reset is found by
keepalives, within ~45 s) fails its first connection: the caller drops the machine's tunnel
and asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncssh

from core.settings import Settings
from core.ssh import SshIdentity, ensure_identity

log = logging.getLogger(__name__)

_LOOPBACK = "127.0.0.1"
# As the activities' connections: keepalives find a silently dead host (3 missed: ~45 s).
_KEEPALIVE_SECONDS = 15
_CLOSE_SECONDS = 5.0


class SshTunnelError(ConnectionError):
    """The machine's SSH server could not be reached, or refused the forward."""


@dataclass
class _Tunnel:
    host: str
    port: int
    user: str
    conn: asyncssh.SSHClientConnection
    # remote port on the machine's loopback -> the local listener forwarding to it
    forwards: dict[int, asyncssh.SSHListener] = field(default_factory=dict)

    def serves(self, host: str, port: int, user: str) -> bool:
        return (self.host, self.port, self.user) == (host, port, user) and not self.conn.is_closed()


class SshTunnels:
    """Local addresses that forward to machines' loopback ports, one SSH connection each."""

    def __init__(self, identity: SshIdentity, *, connect_seconds: float = 15.0) -> None:
        self._key = identity.load()
        self._connect_seconds = connect_seconds
        self._tunnels: dict[str, _Tunnel] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SshTunnels:
        """With Dumont's own key, the one the provider installs on every machine."""
        return cls(ensure_identity(settings.ssh_key_path))

    async def address(
        self, machine_id: str, ssh_host: str, ssh_port: int, remote_port: int, *, user: str
    ) -> tuple[str, int]:
        """A local (host, port) whose connections reach the machine's 127.0.0.1:`remote_port`,
        logged in as `user` (the machine's own, as its provider reports it). Raises
        SshTunnelError when the machine's SSH server cannot be reached."""
        tunnel = self._tunnels.get(machine_id)
        if tunnel is not None and tunnel.serves(ssh_host, ssh_port, user):
            listener = tunnel.forwards.get(remote_port)
            if listener is not None:
                return _LOOPBACK, listener.get_port()
        # One connect per machine at a time: concurrent first requests share it.
        async with self._locks.setdefault(machine_id, asyncio.Lock()):
            tunnel = self._tunnels.get(machine_id)
            if tunnel is not None and not tunnel.serves(ssh_host, ssh_port, user):
                await self._close(machine_id)
                tunnel = None
            if tunnel is None:
                tunnel = await self._connect(ssh_host, ssh_port, user)
                self._tunnels[machine_id] = tunnel
            listener = tunnel.forwards.get(remote_port)
            if listener is None:
                listener = await self._forward(machine_id, tunnel, remote_port)
            return _LOOPBACK, listener.get_port()

    async def drop(self, machine_id: str) -> None:
        """Close the machine's tunnel (paused, destroyed, or a forward found it dead)."""
        # Its lock stays: an address() waiting on it must not race one on a new lock.
        await self._close(machine_id)

    async def aclose(self) -> None:
        for machine_id in list(self._tunnels):
            await self._close(machine_id)
        self._locks.clear()

    async def _connect(self, host: str, port: int, user: str) -> _Tunnel:
        try:
            conn = await asyncssh.connect(
                host,
                port,
                username=user,
                client_keys=[self._key],
                known_hosts=None,  # a fresh machine has a fresh host key; the provider vouches
                agent_path=None,
                config=None,
                connect_timeout=self._connect_seconds,
                keepalive_interval=_KEEPALIVE_SECONDS,
            )
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise SshTunnelError(f"cannot reach {user}@{host}:{port} over SSH: {exc}") from exc
        return _Tunnel(host, port, user, conn)

    async def _forward(
        self, machine_id: str, tunnel: _Tunnel, remote_port: int
    ) -> asyncssh.SSHListener:
        try:
            listener = await tunnel.conn.forward_local_port(_LOOPBACK, 0, _LOOPBACK, remote_port)
        except (OSError, asyncssh.Error) as exc:
            await self._close(machine_id)
            raise SshTunnelError(
                f"cannot forward to port {remote_port} over {tunnel.host}:{tunnel.port}: {exc}"
            ) from exc
        tunnel.forwards[remote_port] = listener
        return listener

    async def _close(self, machine_id: str) -> None:
        tunnel = self._tunnels.pop(machine_id, None)
        if tunnel is None:
            return
        # Closing the connection closes its listeners and every forwarded connection.
        tunnel.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(tunnel.conn.wait_closed(), _CLOSE_SECONDS)
        log.debug("machine %s: SSH tunnel to %s:%s closed", machine_id, tunnel.host, tunnel.port)
