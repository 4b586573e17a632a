"""The FastAPI application: `uvicorn api.app:create_app --factory`.

The lifespan opens what every request shares (the database engine, the Temporal client, the
provider registry) once, and keeps the API up when Temporal is not: requests that need it
answer 503 until it is reachable.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from api.compat import compat_router
from api.errors import install_error_handlers
from api.gateway.app import Gateway
from api.gateway.mount import GatewayDispatch
from api.ingest.service import start_ingest
from api.openapi import install_openapi
from api.routes import agent, api_router
from api.temporal import TemporalConnector, TemporalUnavailable
from core.db import make_engine, migrate
from core.installation import with_installation
from core.settings import Settings, get_settings
from providers.registry import ProviderRegistry

log = logging.getLogger(__name__)

# Routes anyone may call; every other route requires a Bearer token.
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def operation_id(route: APIRoute) -> str:
    """`{tag}-{function}`: stable across FastAPI versions, so a generated client keeps its
    method names."""
    if not route.tags:
        raise ValueError(f"route {route.path} needs a tag: its operationId is tag-function")
    return f"{route.tags[0]}-{route.name}"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway = Gateway(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
        temporal = TemporalConnector(settings.temporal_address, settings.temporal_namespace)
        try:
            await temporal.client()
        except TemporalUnavailable as exc:
            log.warning("%s; starting anyway, will connect on first use", exc)
        providers = ProviderRegistry.from_settings(with_installation(settings, engine))
        app.state.settings = settings
        app.state.engine = engine
        app.state.temporal = temporal
        app.state.providers = providers
        app.state.ingest = start_ingest(engine, temporal)
        app.state.gateway = gateway
        await gateway.start(engine, temporal)
        # What startup built (routes, schemas, the SDKs' modules: ~200,000 objects) lives as
        # long as the process: out of the collector's sight, a full collection no longer
        # stalls every request in flight for ~100 ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await gateway.stop()
            await app.state.ingest.writer.stop()
            await providers.aclose()
            engine.dispose()

    app = FastAPI(
        title="Dumont Cloud",
        summary="Control plane for rented GPU machines.",
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(api_router)
    app.include_router(compat_router)
    app.include_router(agent.router)
    # /serverless/{machine_id}/... (api/gateway): ahead of the API's routing, not a route.
    app.add_middleware(GatewayDispatch, gateway=gateway)

    @app.get("/health", tags=["health"])
    def health(request: Request) -> dict[str, str | bool]:
        """Liveness; says whether Temporal is connected without trying to connect."""
        return {"status": "ok", "temporal": request.app.state.temporal.connected}

    return app
