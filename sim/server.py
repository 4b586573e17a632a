"""The sim's FastAPI app: vast.ai's routes, the admin API, and the fault/latency/limit layer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from sim.api_admin import admin_router
from sim.api_vast import caller_key, vast_router
from sim.config import SimConfig
from sim.errors import VastError
from sim.runtime import Sim

ADMIN_PREFIX = "/sim/admin"


def create_app(config: SimConfig, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The app for `config`; `on_ready` is called once every saved instance is restored."""
    sim = Sim(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await sim.machines.restore()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            await sim.machines.shutdown()

    app = FastAPI(
        title="Dumont sim (vast.ai-compatible)", lifespan=lifespan, redirect_slashes=False
    )
    app.state.sim = sim

    @app.exception_handler(VastError)
    async def vast_error(request: Request, exc: VastError) -> JSONResponse:
        return exc.response()

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
    return app
