"""`GET /api/v1/offers` against the local marketplace: filters, sort, and provider failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.regions import REGIONS
from tests.api.conftest import Api, closed_port, make_settings, running_api
from tests.fixtures.sim import SimHandle, running_sim


@pytest.fixture(scope="module")
async def market(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    """One marketplace for the module: searching does not change it."""
    async with running_sim(tmp_path_factory.mktemp("market")) as handle:
        yield handle


@pytest.fixture
async def clean_market(market: SimHandle) -> SimHandle:
    await market.admin.clear_faults()  # left by an earlier test
    return market


@pytest.fixture
async def offers_api(
    tmp_path: Path, sqlite_url: str, clean_market: SimHandle
) -> AsyncIterator[Api]:
    # Offers need no Temporal: point it nowhere to prove it.
    settings = make_settings(
        tmp_path,
        sqlite_url,
        f"127.0.0.1:{closed_port()}",
        vast_url=clean_market.url,
        vast_api_key=clean_market.api_key,
    )
    async with running_api(settings) as api:
        yield api


async def test_filters_and_price_order(offers_api: Api) -> None:
    params = {
        "gpu": "RTX 4090",
        "max_price": 2.0,
        "region": "EU",
        "min_reliability": 0.9,
        "min_vram_gb": 20,
        "num_gpus": 1,
        "disk_gb": 50,
    }
    response = await offers_api.call("GET", "/api/v1/offers", params=params)
    assert response.status_code == 200, response.text
    offers = response.json()
    assert offers, "the marketplace has RTX 4090s in Europe"
    for offer in offers:
        assert offer["gpu_name"] == "RTX 4090" and offer["num_gpus"] == 1
        assert offer["price_per_hour"] <= 2.0 and offer["reliability"] >= 0.9
        assert offer["country"] in REGIONS["EU"] and offer["gpu_ram_gb"] >= 20
        assert offer["disk_space_gb"] >= 50
    prices = [o["price_per_hour"] for o in offers]
    assert prices == sorted(prices)


async def test_sort_and_limit(offers_api: Api) -> None:
    by_reliability = (
        await offers_api.call("GET", "/api/v1/offers", params={"sort": "reliability", "limit": 10})
    ).json()
    assert len(by_reliability) == 10
    reliabilities = [o["reliability"] for o in by_reliability]
    assert reliabilities == sorted(reliabilities, reverse=True)
    by_vram = (await offers_api.call("GET", "/api/v1/offers", params={"sort": "vram"})).json()
    vram = [o["gpu_ram_gb"] for o in by_vram]  # per GPU
    assert vram == sorted(vram, reverse=True)
    cheap = (await offers_api.call("GET", "/api/v1/offers", params={"max_price": 0.01})).json()
    assert cheap == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"region": "Atlantis"}, "region"),
        ({"max_price": "-1"}, "max_price"),
        ({"min_reliability": "2"}, "min_reliability"),
        ({"sort": "colour"}, "sort"),
        ({"num_gpus": "x"}, "num_gpus"),
        ({"limit": "0"}, "limit"),
    ],
)
async def test_bad_filters_name_the_field(api: Api, params: dict[str, str], field: str) -> None:
    response = await api.call("GET", "/api/v1/offers", params=params)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["query", field]]
    assert response.json()["message"].startswith(f"{field}: ")


async def test_provider_rate_limit_is_503_with_retry_after(
    offers_api: Api, market: SimHandle
) -> None:
    await market.admin.fail_next(1, status=429, retry_after=120, path_prefix="/api/v0/bundles")
    response = await offers_api.call("GET", "/api/v1/offers")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "120"
    assert "rate limiting" in response.json()["detail"]
    assert (await offers_api.call("GET", "/api/v1/offers")).status_code == 200


async def test_provider_failure_is_502(offers_api: Api, market: SimHandle) -> None:
    await market.admin.fail_next(10, status=500, path_prefix="/api/v0/bundles")
    response = await offers_api.call("GET", "/api/v1/offers")
    assert response.status_code == 502
    assert response.json()["detail"].startswith("the provider failed: vast:")


async def test_bad_provider_credentials_are_502_without_the_key(
    tmp_path: Path, sqlite_url: str, clean_market: SimHandle
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        f"127.0.0.1:{closed_port()}",
        vast_url=clean_market.url,
        vast_api_key="wrong-key-123",
    )
    async with running_api(settings) as api:
        response = await api.call("GET", "/api/v1/offers")
    assert response.status_code == 502
    assert "credentials" in response.json()["detail"]
    assert "wrong-key-123" not in response.text


async def test_an_unconfigured_provider_is_503(api: Api) -> None:
    response = await api.call("GET", "/api/v1/offers")
    assert response.status_code == 503
    assert "VAST_API_KEY" in response.json()["detail"]


async def test_pages_follow_the_ranking(offers_api: Api) -> None:
    whole = (await offers_api.call("GET", "/api/v1/offers", params={"limit": 12})).json()
    first = await offers_api.call("GET", "/api/v1/offers", params={"limit": 5})
    second = await offers_api.call("GET", first.links["next"]["url"])
    third = await offers_api.call("GET", second.links["next"]["url"])
    assert "limit=5" in second.links["next"]["url"]
    assert [o["offer_id"] for o in first.json() + second.json() + third.json()][:12] == [
        o["offer_id"] for o in whole
    ]
    bad = await offers_api.call("GET", "/api/v1/offers", params={"cursor": "x"})
    assert bad.status_code == 422 and bad.json()["message"].startswith("cursor: ")


async def test_an_unknown_provider_is_422_naming_it(offers_api: Api) -> None:
    response = await offers_api.call("GET", "/api/v1/offers", params={"provider": "aws"})
    assert response.status_code == 422
    assert response.json()["message"] == "provider: unknown provider 'aws' (configured: vast)"
    assert [e["loc"] for e in response.json()["detail"]] == [["query", "provider"]]
    assert (await offers_api.call("GET", "/api/v1/offers", params={"provider": "vast"})).is_success
