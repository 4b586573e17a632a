"""Interruptible (bid) instances: VastProvider against the local marketplace (a real `python -m
sim`): bid offers, creates at a bid, a bid below the minimum that leaves nothing behind, and an
instance the host took back reading `interrupted`."""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.contracts.states import InstanceStatus
from providers.base import CreateRequest, InvalidRequest, Offer, OfferQuery, OfferUnavailable
from providers.retry import RetryPolicy
from providers.vast import VastProvider
from providers.vast.bids import MIN_BID
from tests.fixtures.sim import SimHandle, running_sim
from tests.providers.test_vast_sim import IMAGE, labelled, wait_for

FAST = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.05)
# Enough of the catalogue (~320 offers) to hold offers on both sides of any bid.
EVERY = 1000


@pytest.fixture(scope="module")
async def cloud(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    async with running_sim(tmp_path_factory.mktemp("bids") / "sim") as handle:
        yield handle


@pytest.fixture
async def vast(cloud: SimHandle) -> AsyncIterator[VastProvider]:
    provider = VastProvider(cloud.url, cloud.api_key, retry=FAST)
    yield provider
    await provider.aclose()


def floor(offer: Offer) -> float:
    return float(offer.provider_data[MIN_BID])


def bid_on(offer: Offer, label: str) -> CreateRequest:
    """An interruptible create at the offer's minimum bid, as a provision makes it."""
    return CreateRequest(
        offer.offer_id, IMAGE, 10, label, interruptible=True, provider_data=offer.provider_data
    )


async def raw_instance(cloud: SimHandle, instance_id: str) -> dict[str, Any]:
    """The instance as vast.ai's own API shows it."""
    async with cloud.client() as client:
        answer = await client.get(f"/api/v0/instances/{instance_id}/")
        answer.raise_for_status()
        row: dict[str, Any] = answer.json()["instances"]
        return row


async def test_bid_offers_are_priced_at_their_minimum_bid(vast: VastProvider) -> None:
    on_demand = {o.offer_id: o for o in await vast.search_offers(OfferQuery(limit=EVERY))}
    bids = await vast.search_offers(OfferQuery(limit=EVERY, interruptible=True))
    assert bids and {o.offer_id for o in bids} <= set(on_demand)
    for offer in bids:
        # The same disk priced in, the GPUs at the minimum bid instead of on-demand.
        assert floor(offer) < offer.price_per_hour < on_demand[offer.offer_id].price_per_hour
    assert [o.price_per_hour for o in bids] == sorted(o.price_per_hour for o in bids)


async def test_a_bid_leaves_out_the_offers_whose_minimum_is_above_it(vast: VastProvider) -> None:
    every = await vast.search_offers(OfferQuery(limit=EVERY, interruptible=True))
    bid = statistics.median(floor(o) for o in every)
    admitted = await vast.search_offers(OfferQuery(limit=EVERY, interruptible=True, bid_price=bid))
    assert {o.offer_id for o in admitted} == {o.offer_id for o in every if floor(o) <= bid}
    assert 0 < len(admitted) < len(every)


async def test_an_interruptible_create_at_a_bid_above_the_minimum_runs(
    vast: VastProvider, cloud: SimHandle
) -> None:
    offer = (await vast.search_offers(OfferQuery(limit=1, interruptible=True)))[0]
    bid = round(floor(offer) + 0.05, 4)
    created = await vast.create_instance(
        CreateRequest(offer.offer_id, IMAGE, 10, "dumont-b1-1", interruptible=True, bid_price=bid)
    )
    running = await wait_for(vast, created.instance_id, InstanceStatus.RUNNING)
    assert running.ssh_host and running.ssh_port and not running.interrupted
    row = await raw_instance(cloud, created.instance_id)
    assert row["is_bid"] is True
    # vast bills the bid (and the disk), not the offer's on-demand price.
    assert running.disk_price_per_hour is not None
    assert running.price_per_hour == pytest.approx(bid + running.disk_price_per_hour, abs=1e-5)
    await vast.destroy_instance(created.instance_id)


async def test_without_a_bid_of_its_own_a_create_bids_the_offers_minimum(
    vast: VastProvider, cloud: SimHandle
) -> None:
    offer = (await vast.search_offers(OfferQuery(limit=1, interruptible=True)))[0]
    created = await vast.create_instance(bid_on(offer, "dumont-b2-1"))
    running = await wait_for(vast, created.instance_id, InstanceStatus.RUNNING)
    assert (await raw_instance(cloud, created.instance_id))["is_bid"] is True
    assert running.disk_price_per_hour is not None
    assert running.price_per_hour - running.disk_price_per_hour == pytest.approx(
        floor(offer), abs=1e-5
    )
    await vast.destroy_instance(created.instance_id)


async def test_an_on_demand_create_is_not_a_bid(vast: VastProvider, cloud: SimHandle) -> None:
    offer = (await vast.search_offers(OfferQuery(limit=1, interruptible=True)))[0]
    created = await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-b3-1"))
    assert (await raw_instance(cloud, created.instance_id))["is_bid"] is False
    await vast.destroy_instance(created.instance_id)


async def test_a_bid_below_the_minimum_leaves_nothing_behind_and_says_why(
    vast: VastProvider, cloud: SimHandle
) -> None:
    offer = (await vast.search_offers(OfferQuery(limit=1, interruptible=True)))[0]
    bid = round(floor(offer) / 2, 4)
    with pytest.raises(OfferUnavailable) as refused:
        await vast.create_instance(
            CreateRequest(
                offer.offer_id, IMAGE, 10, "dumont-b4-1", interruptible=True, bid_price=bid
            )
        )
    said = str(refused.value)
    assert f"${bid:g}/h" in said and "below the minimum" in said and "destroyed" in said
    # vast made it stopped; it was destroyed: not listed, and the offer is back on the market.
    assert await labelled(cloud, "dumont-b4-") == []
    assert await vast.find_by_exact_label("dumont-b4-1") == []
    market = await vast.search_offers(OfferQuery(limit=EVERY, interruptible=True))
    assert offer.offer_id in {o.offer_id for o in market}


async def test_an_interruptible_create_needs_a_bid_or_a_bid_offer(
    vast: VastProvider, cloud: SimHandle
) -> None:
    offer = (await vast.search_offers(OfferQuery(limit=1)))[0]
    with pytest.raises(InvalidRequest, match="needs a bid"):
        await vast.create_instance(
            CreateRequest(
                offer.offer_id,
                IMAGE,
                10,
                "dumont-b5-1",
                interruptible=True,
                provider_data={},  # not the offer's: no minimum bid to fall back on
            )
        )
    assert await labelled(cloud, "dumont-b5-") == []


async def test_an_instance_the_host_took_back_reads_interrupted(
    vast: VastProvider, cloud: SimHandle
) -> None:
    taken_offer, stopped_offer = await vast.search_offers(OfferQuery(limit=2, interruptible=True))
    taken = await vast.create_instance(bid_on(taken_offer, "dumont-b6-1"))
    stopped = await vast.create_instance(bid_on(stopped_offer, "dumont-b7-1"))
    await wait_for(vast, taken.instance_id, InstanceStatus.RUNNING)
    await wait_for(vast, stopped.instance_id, InstanceStatus.RUNNING)

    await cloud.admin.interrupt(int(taken.instance_id))  # outbid
    await vast.stop_instance(stopped.instance_id)  # asked for
    await wait_for(vast, stopped.instance_id, InstanceStatus.STOPPED)

    fetched = await vast.get_instance(taken.instance_id)
    assert fetched is not None and fetched.status is InstanceStatus.STOPPED
    assert fetched.interrupted, fetched.status_msg
    [listed] = await vast.find_by_exact_label("dumont-b6-1")
    assert listed.interrupted
    own_stop = await vast.get_instance(stopped.instance_id)
    assert own_stop is not None and own_stop.status is InstanceStatus.STOPPED
    assert not own_stop.interrupted
    [listed_stop] = await vast.find_by_exact_label("dumont-b7-1")
    assert not listed_stop.interrupted
    for instance in (taken, stopped):
        await vast.destroy_instance(instance.instance_id)
