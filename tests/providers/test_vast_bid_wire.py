"""Interruptible (bid) instances on the wire: the bid search body, offers a bid cannot rent,
what a create bids, how an outbid instance reads, and an under-bid answer the local
marketplace does not give (an error status still carrying `new_contract`, scripted with
httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest

from core.contracts.states import InstanceStatus
from providers.base import CreateRequest, InvalidRequest, OfferQuery, OfferUnavailable
from providers.retry import RetryPolicy
from providers.vast import VastProvider
from providers.vast.bids import MIN_BID, create_price
from providers.vast.wire import offer_matches, parse_instance, parse_offer, search_body

KEY = "secret-key-0123456789"
FAST = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)


def offer_row(min_bid: float) -> dict[str, object]:
    return {"id": 7, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.2, "min_bid": min_bid}


def test_an_interruptible_search_asks_for_bid_offers_and_the_bids_floor():
    plain = search_body(OfferQuery())
    assert plain["type"] == "on-demand" and "min_bid" not in plain
    assert search_body(OfferQuery(interruptible=True))["type"] == "bid"
    bid = search_body(OfferQuery(interruptible=True, bid_price=0.35))
    assert (bid["type"], bid["min_bid"]) == ("bid", {"lte": "0.35"})
    # A bid without interruptible is no bid search.
    assert "min_bid" not in search_body(OfferQuery(bid_price=0.35))


@pytest.mark.parametrize(("min_bid", "admitted"), [(0.3, True), (0.35, True), (0.36, False)])
def test_an_offer_whose_minimum_is_above_the_bid_is_left_out(min_bid, admitted):
    """Re-checked on what came back: a server ignoring the filter must not rent at a loss."""
    row = offer_row(min_bid)
    query = OfferQuery(interruptible=True, bid_price=0.35)
    assert offer_matches(row, parse_offer(row), query) is admitted
    # Without a bid, each offer is bid its own minimum: none is left out for it.
    assert offer_matches(row, parse_offer(row), OfferQuery(interruptible=True))


def test_an_offer_carries_its_minimum_bid():
    assert parse_offer(offer_row(0.125)).provider_data == {MIN_BID: "0.125"}
    assert parse_offer({"id": 8}).provider_data == {}


def test_a_create_bids_its_own_price_else_the_offers_minimum():
    offer = parse_offer(offer_row(0.125))
    request = CreateRequest("7", "img", 10, "l", provider_data=offer.provider_data)
    assert create_price(request) is None  # on-demand
    request.interruptible = True
    assert create_price(request) == 0.125
    request.bid_price = 0.5
    assert create_price(request) == 0.5
    with pytest.raises(InvalidRequest, match="needs a bid"):
        create_price(CreateRequest("7", "img", 10, "l", interruptible=True))


def instance_row(actual: str, status_msg: str | None) -> dict[str, object]:
    return {
        "id": 1,
        "actual_status": actual,
        "intended_status": "stopped",
        "cur_state": "stopped",
        "next_state": "stopped",
        "status_msg": status_msg,
    }


@pytest.mark.parametrize(
    ("actual", "status_msg", "interrupted"),
    [
        ("stopped", "Instance was interrupted: its GPUs were rented by a higher priority", True),
        ("stopped", "outbid by a higher bid", True),
        ("stopped", "Preempted", True),
        ("stopped", None, False),  # a stop Dumont asked for
        ("stopped", "Scheduling: waiting for GPUs", False),
        ("running", "interrupted earlier, running again", False),
    ],
)
def test_only_a_stop_the_host_explains_as_an_outbid_is_interrupted(actual, status_msg, interrupted):
    instance = parse_instance(instance_row(actual, status_msg))
    assert instance.interrupted is interrupted
    if interrupted:
        assert instance.status is InstanceStatus.STOPPED


async def test_an_error_status_that_still_made_an_instance_destroys_it():
    """vast's exact status for an under-bid create is not documented: an error status with
    `new_contract` is handled like the `success: false` the sim answers."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v1/instances/":
            return httpx.Response(200, json={"instances": [], "next_token": None})
        if request.method == "PUT":
            return httpx.Response(
                400,
                json={
                    "success": False,
                    "error": "invalid_price",
                    "msg": "bid below the minimum",
                    "new_contract": 4242,
                },
            )
        if request.method == "DELETE":
            return httpx.Response(200, json={"success": True})
        raise AssertionError(f"unexpected {request.method} {request.url}")

    vast = VastProvider(
        "https://vast.test", KEY, retry=FAST, transport=httpx.MockTransport(handler)
    )
    try:
        with pytest.raises(OfferUnavailable, match="bid below the minimum") as refused:
            await vast.create_instance(
                CreateRequest("7", "img", 10, "dumont-w1-1", interruptible=True, bid_price=0.01)
            )
    finally:
        await vast.aclose()
    assert "4242" in str(refused.value) and KEY not in str(refused.value)
    [create] = [r for r in seen if r.method == "PUT"]
    assert json.loads(create.content)["price"] == 0.01
    assert [r.url.path for r in seen if r.method == "DELETE"] == ["/api/v0/instances/4242/"]
