"""While the database is unreachable every route but health and the docs answers 503 (the
token is read from it), never a 500; once it is back the API works again, on the same engine."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy.engine import make_url

from api.app import PUBLIC_PATHS
from api.errors import DATABASE_UNAVAILABLE
from tests.api.conftest import Api, closed_port, make_settings, running_api
from tests.api.test_ssh_keys import new_key, public
from tests.fixtures.tcp_proxy import TcpProxy


@pytest.fixture
async def proxied_api(tmp_path: Path, postgres_url: str) -> AsyncIterator[tuple[Api, TcpProxy]]:
    """The API on PostgreSQL through a proxy the test can cut; Temporal is not needed."""
    url = make_url(postgres_url)
    assert url.host is not None and url.port is not None
    proxy = TcpProxy(url.host, url.port)
    port = await proxy.start()
    through = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    try:
        settings = make_settings(tmp_path, through, f"127.0.0.1:{closed_port()}")
        async with running_api(settings) as api:
            yield api, proxy
    finally:
        await proxy.stop()


async def add_key(api: Api) -> int:
    body = {"name": "laptop", "public_key": public(new_key())}
    return (await api.call("POST", "/api/v1/ssh-keys", json=body)).status_code


async def test_an_outage_is_503_everywhere_and_the_api_recovers(
    proxied_api: tuple[Api, TcpProxy],
) -> None:
    api, proxy = proxied_api
    assert await add_key(api) == 201

    proxy.cut()
    calls = [
        (method, re.sub(r"\{[^}]+\}", "1", route.path or ""))
        for route in iter_route_contexts(api.app.routes)
        if route.path not in PUBLIC_PATHS
        for method in sorted((route.methods or set()) - {"HEAD"})
    ]
    assert ("POST", "/api/agent/status") in calls and len(calls) > 30
    for method, path in calls:
        # The agent's route takes an agent's token: one that looks like one, so it is looked up.
        token = "dma_unknown" if path.startswith("/api/agent/") else api.alice
        response = await api.call(method, path, token=token, json={})
        assert (response.status_code, response.json()) == (
            503,
            {"detail": DATABASE_UNAVAILABLE},
        ), (method, path)
    assert (await api.http.get("/health")).status_code == 200  # liveness needs no database

    proxy.restore()
    assert await add_key(api) == 201
    keys = await api.call("GET", "/api/v1/ssh-keys")
    assert keys.status_code == 200 and len(keys.json()) == 2
