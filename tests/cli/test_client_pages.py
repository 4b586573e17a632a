"""The CLI's client reads a whole list page by page, following `Link: <...>; rel="next"`, and
stops once it has what it was asked for."""

from __future__ import annotations

from pathlib import Path

import httpx

from dumont.client import DumontClient
from dumont.config import ClientConfig

ITEMS = [{"id": n} for n in range(7)]


def _pages(request: httpx.Request) -> httpx.Response:
    """Three items a page; the cursor is where the next page starts."""
    start = int(request.url.params.get("cursor", "0"))
    headers = {}
    if start + 3 < len(ITEMS):
        following = request.url.copy_set_param("cursor", str(start + 3))
        headers["Link"] = f'<{following}>; rel="next"'
    return httpx.Response(200, json=ITEMS[start : start + 3], headers=headers)


def _client(tmp_path: Path, seen: list[httpx.URL]) -> DumontClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return _pages(request)

    client = DumontClient(ClientConfig("http://api.test", "dmt_x", tmp_path / "dev.env"))
    client._http = httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(handler))
    return client


def test_a_list_is_read_to_its_last_page(tmp_path: Path) -> None:
    seen: list[httpx.URL] = []
    with _client(tmp_path, seen) as client:
        assert client.list_machines() == ITEMS
    assert [url.params.get("cursor") for url in seen] == [None, "3", "6"]


def test_a_bounded_list_stops_once_it_has_enough(tmp_path: Path) -> None:
    seen: list[httpx.URL] = []
    with _client(tmp_path, seen) as client:
        assert client.list_alerts(state="firing", limit=4) == ITEMS[:4]
    assert len(seen) == 2
    assert all(url.params["state"] == "firing" for url in seen)  # the link keeps the filters
