"""The sim's FastAPI apps: vast.ai's routes, the admin API, and the fault/latency/limit layer;
and the Compute Engine app (sim/gce), served on its own socket over the same Sim."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from sim.api_admin import admin_router
from sim.api_vast import caller_key, vast_router
from sim.config import SimConfig
from sim.errors import VastError
from sim.gce.app import create_gce_app
from sim.gce.errors import GceError
from sim.runtime import Sim

ADMIN_PREFIX = "/sim/admin"


@dataclass
class SimApps:
    vast: FastAPI
    # Has no lifespan: the vast app's restores and shuts down the GCE machines as well.
    gce: FastAPI
    sim: Sim


def create_app(config: SimConfig, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The vast app for `config` (GCE machines are restored, their endpoint not served)."""
    return create_apps(config, on_ready).vast


def create_apps(config: SimConfig, on_ready: Callable[[], None] | None = None) -> SimApps:
    """Both apps for `config`; `on_ready` is called once every saved instance is restored."""
    sim = Sim(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await sim.machines.restore()
        await sim.gce.restore()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            await sim.gce.shutdown()
            await sim.machines.shutdown()

    app = FastAPI(
        title="Dumont sim (vast.ai-compatible)", lifespan=lifespan, redirect_slashes=False
    )
    app.state.sim = sim

    @app.exception_handler(VastError)
    async def vast_error(request: Request, exc: VastError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(GceError)
    async def gce_error(request: Request, exc: GceError) -> JSONResponse:
        return exc.response()  # from the admin API's GCE routes

    @app.middleware("http")
    async def faults_and_limits(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith(ADMIN_PREFIX):
            return await call_next(request)
        if sim.faults.latency > 0:
            await asyncio.sleep(sim.faults.latency)
        rule = sim.faults.take(request.method, path)
        if rule is not None:
            return rule.response()
        if sim.limiter is not None:
            caller = caller_key(request) or (request.client.host if request.client else "?")
            limited = sim.limiter.check(request.method, path, caller)
            if limited is not None:
                return limited
        return await call_next(request)

    app.include_router(vast_router(sim))
    app.include_router(admin_router(sim))
    return SimApps(vast=app, gce=create_gce_app(sim.gce), sim=sim)
