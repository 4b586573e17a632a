"""Where the gateway meets the parts built beside it: forwarding over Dumont's SSH connection
(`via_ssh`, api/gateway/ssh_tunnel.py) and WebSocket proxying (api/gateway/websocket.py). The
gateway does everything before them (the route, the key, the hold queue, traffic accounting)
and hands over a target; until those modules exist, the defaults below refuse clearly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Scope, Send

from api.gateway.headers import RawHeaders
from api.gateway.routes import Route
from core.settings import Settings


class TunnelUnavailable(Exception):
    """The service cannot be reached over SSH (no tunnel support, or the SSH connection
    failed); the message says why."""


class Tunnels(Protocol):
    async def local_address(self, route: Route) -> str:
        """A "host:port" on this host that reaches `route.port` on the machine's own loopback
        over SSH (`route.ssh_host`, `route.ssh_port`)."""
        ...

    async def aclose(self) -> None: ...


class NoTunnels:
    async def local_address(self, route: Route) -> str:
        raise TunnelUnavailable("via_ssh forwarding is not available in this gateway")

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class WebSocketTarget:
    machine_id: str
    address: str  # "host:port" of the service
    path: str  # path and query, as the service sees them
    headers: RawHeaders  # the client's, filtered as for HTTP (no endpoint key, X-Forwarded-*)
    subprotocols: list[str]
    cold_start_headers: RawHeaders  # to add to the handshake's answer


class WebSocketProxy(Protocol):
    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, target: WebSocketTarget
    ) -> None:
        """Accept the client's WebSocket, connect to the target and pump both ways until
        either side closes. The gateway counts the session as an open request meanwhile."""
        ...


async def no_websockets(
    scope: Scope, receive: Receive, send: Send, target: WebSocketTarget
) -> None:
    await send({"type": "websocket.close", "code": 1011, "reason": "WebSockets not supported"})


def default_tunnels(settings: Settings) -> Tunnels:
    try:
        from api.gateway import ssh_tunnel  # type: ignore[attr-defined]
    except ImportError:
        return NoTunnels()
    tunnels: Tunnels = ssh_tunnel.SshTunnels(settings)
    return tunnels


def default_websockets() -> WebSocketProxy:
    try:
        from api.gateway import websocket  # type: ignore[attr-defined]
    except ImportError:
        return no_websockets
    proxy: WebSocketProxy = websocket.proxy_websocket
    return proxy
