"""Where the gateway meets the parts built beside it: forwarding over Dumont's SSH connection
(`via_ssh`, api/gateway/ssh_tunnel.py) and WebSocket proxying (api/gateway/websocket.py). The
gateway does everything before them (the route, the key, the hold queue, traffic accounting)
and hands over a target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from api.gateway.headers import RawHeaders
from api.gateway.routes import Route
from api.gateway.ssh_tunnel import SshTunnelError, SshTunnels
from api.gateway.websocket import proxy_websocket as relay
from core.settings import Settings


class TunnelUnavailable(Exception):
    """The service cannot be reached over SSH (the SSH connection failed); the message says
    why."""


class Tunnels(Protocol):
    async def local_address(self, route: Route) -> str:
        """A "host:port" on this host that reaches `route.port` on the machine's own loopback
        over SSH (`route.ssh_host`, `route.ssh_port`, as `route.ssh_user`)."""
        ...

    async def drop(self, machine_id: str) -> None:
        """Forget the machine's tunnel (its forward failed to connect)."""
        ...

    async def aclose(self) -> None: ...


class SshTunnelSeam:
    """`Tunnels` over api/gateway/ssh_tunnel.py: one SSH connection per machine."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tunnels: SshTunnels | None = None

    def _get(self) -> SshTunnels:
        if self._tunnels is None:  # reads Dumont's key: only once a via_ssh route needs it
            self._tunnels = SshTunnels.from_settings(self._settings)
        return self._tunnels

    async def local_address(self, route: Route) -> str:
        if not route.ssh_host or not route.ssh_port:
            raise TunnelUnavailable("the machine has no SSH address")
        port = int(route.port.split("/", 1)[0])
        try:
            host, local = await self._get().address(
                route.machine_id, route.ssh_host, route.ssh_port, port, user=route.ssh_user
            )
        except SshTunnelError as err:
            raise TunnelUnavailable(f"the machine's SSH connection failed: {err}") from err
        return f"{host}:{local}"

    async def drop(self, machine_id: str) -> None:
        if self._tunnels is not None:
            await self._tunnels.drop(machine_id)

    async def aclose(self) -> None:
        if self._tunnels is not None:
            await self._tunnels.aclose()


@dataclass(frozen=True, kw_only=True, slots=True)
class WebSocketTarget:
    machine_id: str
    address: str  # "host:port" of the service
    path: str  # path and query, as the service sees them
    headers: RawHeaders  # the client's, filtered as for HTTP (no endpoint key, X-Forwarded-*)


async def proxy_websocket(
    scope: Scope, receive: Receive, send: Send, target: WebSocketTarget
) -> None:
    """Relay the client's WebSocket to the service until either side closes
    (api/gateway/websocket.py); the gateway counts it as an open request meanwhile."""
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in target.headers]
    await relay(WebSocket(scope, receive, send), f"ws://{target.address}{target.path}", headers)
