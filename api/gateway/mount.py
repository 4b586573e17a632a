"""The gateway in front of another ASGI application (the API, or the standalone process's
own few routes): `/serverless/...` goes to the gateway before any routing, everything else
to the application. A middleware rather than a `Mount`: the API's route table (and the tests
that check every route wants a token) stays the API's own, and the gateway's requests skip
FastAPI's routing and middleware altogether."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.gateway.app import Gateway
from api.gateway.target import is_gateway_path, route_path


class GatewayDispatch:
    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and is_gateway_path(route_path(scope)):
            await self.gateway(scope, receive, send)
            return
        await self.app(scope, receive, send)
