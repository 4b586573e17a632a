"""The gateway in its own process (`dumont gateway`): the same `/serverless/...` as on the API,
plus `/health` for a load balancer (503 once it is stopping, so traffic drains to the others).
Its lifespan opens the database engine and the Temporal connection from the settings; the
API's process owns the schema (migrations)."""

from __future__ import annotations

import logging

import uvicorn
from starlette.types import Receive, Scope, Send

from api.gateway.answers import send_json
from api.gateway.app import Gateway
from api.gateway.mount import GatewayDispatch
from api.temporal import TemporalConnector, TemporalUnavailable
from core.db import make_engine
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)


class _Process:
    """What the gateway process answers besides `/serverless/...`, and its lifespan."""

    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        self.settings = settings
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] == "/health":
            stopping = self.gateway.closing
            body = {
                "status": "stopping" if stopping else "ok",
                "gateway_id": self.gateway.gateway_id,
            }
            await send_json(send, 503 if stopping else 200, body)
        elif scope["type"] == "http":
            await send_json(send, 404, {"detail": "not found"})
        else:
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        engine = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    s = self.settings
                    engine = make_engine(s.resolved_database_url)
                    temporal = TemporalConnector(s.temporal_address, s.temporal_namespace)
                    try:
                        await temporal.client()
                    except TemporalUnavailable as exc:
                        log.warning("%s; starting anyway, will connect on first use", exc)
                    await self.gateway.start(engine, temporal)
                except Exception as exc:  # noqa: BLE001 - told to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.stop()
                if engine is not None:
                    engine.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_gateway_app(settings: Settings | None = None) -> GatewayDispatch:
    settings = settings or get_settings()
    gateway = Gateway(settings)
    return GatewayDispatch(_Process(settings, gateway), gateway)


def serve(settings: Settings, *, host: str, port: int) -> None:
    config = uvicorn.Config(
        create_gateway_app(settings),
        host=host,
        port=port,
        lifespan="on",
        log_level="info",
    )
    uvicorn.Server(config).run()
