"""The GCE app, served on its own socket next to the vast one, over the sim's GceCloud."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response

from sim.gce.errors import GceError
from sim.gce.instances import GceCloud
from sim.gce.routes import gce_router

_REASONS = {404: "notFound", 405: "badRequest"}


def create_gce_app(cloud: GceCloud) -> FastAPI:
    """No lifespan of its own: the vast app's restores and shuts down the GCE machines too."""
    app = FastAPI(title="Dumont sim (Compute Engine-compatible)", redirect_slashes=False)
    app.state.cloud = cloud

    @app.exception_handler(GceError)
    async def gce_error(request: Request, exc: GceError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = f"The resource '{request.url.path}' was not found"
        if exc.status_code != 404:
            message = str(exc.detail)
        reason = _REASONS.get(exc.status_code, "badRequest")
        return GceError(exc.status_code, reason, message).response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return GceError(400, "invalid", f"Invalid request: {exc.errors()}").response()

    @app.middleware("http")
    async def storms(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        error = cloud.faults.take_storm(request.method, request.url.path)
        if error is not None:
            return error.response()
        return await call_next(request)

    app.include_router(gce_router(cloud))
    return app
