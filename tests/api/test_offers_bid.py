"""`GET /api/v1/offers?interruptible=true` against the local marketplace: bid offers, priced at
their minimum bid, and a 422 naming the field on a provider without them."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.test_offers import clean_market, market, offers_api

__all__ = ["clean_market", "market", "offers_api"]  # the fixtures, shared with test_offers


async def test_interruptible_offers_cost_less_than_on_demand(offers_api: Api) -> None:
    params = {"limit": 500}
    on_demand = (await offers_api.call("GET", "/api/v1/offers", params=params)).json()
    answer = await offers_api.call(
        "GET", "/api/v1/offers", params={**params, "interruptible": "true"}
    )
    assert answer.status_code == 200, answer.text
    bids = answer.json()
    assert bids
    price = {o["offer_id"]: o["price_per_hour"] for o in on_demand}
    assert all(o["price_per_hour"] < price[o["offer_id"]] for o in bids)


async def test_interruptible_offers_on_gcp_are_422_naming_the_field(offers_api: Api) -> None:
    answer = await offers_api.call(
        "GET", "/api/v1/offers", params={"provider": "gcp", "interruptible": "true"}
    )
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", "interruptible"]]
    assert "only for provider vast, not gcp" in answer.json()["message"]
