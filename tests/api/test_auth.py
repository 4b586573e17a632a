"""Every route but health and the docs requires a valid Bearer token."""

from __future__ import annotations

import re

from fastapi.routing import iter_route_contexts

from api.app import PUBLIC_PATHS
from core.accounts import revoke_token
from core.db import session_scope
from tests.api.conftest import Api


def _calls(api: Api) -> list[tuple[str, str]]:
    """(method, concrete path) for every API route, path parameters filled with `1`."""
    calls = []
    for route in iter_route_contexts(api.app.routes):
        assert route.path is not None and route.methods
        if route.path not in PUBLIC_PATHS:
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            calls += [(method, path) for method in sorted(route.methods - {"HEAD"})]
    return calls


async def test_the_only_routes_without_a_token_are_health_and_docs(api: Api) -> None:
    paths = {route.path for route in iter_route_contexts(api.app.routes)}
    assert PUBLIC_PATHS - paths <= {"/redoc", "/docs/oauth2-redirect"}
    assert (await api.http.get("/health")).json()["status"] == "ok"
    assert (await api.http.get("/docs")).status_code == 200
    assert "/api/v1/machines" in (await api.http.get("/openapi.json")).json()["paths"]


async def test_every_other_route_refuses_a_missing_or_invalid_token(api: Api) -> None:
    calls = _calls(api)
    assert ("POST", "/api/v1/machines") in calls and ("GET", "/api/v1/offers") in calls
    with session_scope(api.engine) as session:
        revoke_token(session, api.bob)
    for method, path in calls:
        for headers in (
            {},
            {"Authorization": "Bearer dmt_wrong"},
            api.auth(api.bob),
            {"Authorization": f"Basic {api.alice}"},
        ):
            response = await api.http.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_valid_token_gets_through(api: Api) -> None:
    response = await api.call("GET", "/api/v1/machines")
    assert response.status_code == 200
    assert response.json() == []
