"""An interruptible spec through `provision_instance` against the local cloud: the search asks
for bid offers a bid can rent, and the create bids (the spec's price, else the offer's
minimum); an on-demand spec stays on-demand."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.provider import ProviderActivities
from core.contracts import instance_label
from core.contracts.activities import DestroyInstancesInput, ProvisionInput
from core.contracts.errors import ErrorType
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.providers import ProviderFeature
from providers.base import Offer, OfferQuery
from providers.registry import ProviderRegistry
from providers.vast.bids import MIN_BID
from tests.fixtures.sim import SimHandle

SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch", disk_gb=20, interruptible=True)


@pytest.fixture
def mid() -> str:
    return f"m{uuid.uuid4().hex[:8]}"


async def provision(acts: ProviderActivities, machine_id: str, spec: MachineSpec) -> InstanceInfo:
    return await ActivityEnvironment().run(
        acts.provision_instance,
        ProvisionInput(machine_id=machine_id, spec=spec, label=instance_label(machine_id, 1)),
    )


async def bid_offers(registry: ProviderRegistry) -> dict[str, Offer]:
    [vast] = registry.with_feature(ProviderFeature.OFFER_MARKETPLACE, "vast")
    found = await vast.search_offers(
        OfferQuery(gpu_name="RTX 4090", num_gpus=1, min_disk_gb=20, interruptible=True, limit=500)
    )
    return {o.offer_id: o for o in found}


async def as_vast_shows_it(cloud: SimHandle, instance_id: str) -> dict[str, Any]:
    async with cloud.client() as client:
        answer = await client.get(f"/api/v0/instances/{instance_id}/")
        answer.raise_for_status()
        row: dict[str, Any] = answer.json()["instances"]
        return row


def gpu_price(row: dict[str, Any]) -> float:
    """What the instance bills per hour for its GPUs (its disk taken out)."""
    return float(row["dph_total"]) - float(row["storage_total_cost"])


async def destroy(acts: ProviderActivities, machine_id: str) -> None:
    await ActivityEnvironment().run(
        acts.destroy_instances, DestroyInstancesInput(provider="vast", machine_id=machine_id)
    )


async def test_the_specs_bid_reaches_the_create(
    cloud: SimHandle, registry: ProviderRegistry, provider_activities: ProviderActivities, mid: str
) -> None:
    floors = sorted(float(o.provider_data[MIN_BID]) for o in (await bid_offers(registry)).values())
    bid = round(floors[len(floors) // 2], 4)  # above the cheapest offers' minimum
    info = await provision(provider_activities, mid, replace(SPEC, bid_price=bid))
    row = await as_vast_shows_it(cloud, info.instance_id)
    assert row["is_bid"] is True
    assert gpu_price(row) == pytest.approx(bid, abs=1e-5)
    assert float(row["min_bid"]) <= bid
    await destroy(provider_activities, mid)


async def test_without_a_bid_the_create_bids_the_offers_minimum(
    cloud: SimHandle, registry: ProviderRegistry, provider_activities: ProviderActivities, mid: str
) -> None:
    info = await provision(provider_activities, mid, SPEC)
    row = await as_vast_shows_it(cloud, info.instance_id)
    assert row["is_bid"] is True
    assert gpu_price(row) == pytest.approx(float(row["min_bid"]), abs=1e-5)
    await destroy(provider_activities, mid)


async def test_an_on_demand_spec_rents_on_demand(
    cloud: SimHandle, provider_activities: ProviderActivities, mid: str
) -> None:
    info = await provision(provider_activities, mid, replace(SPEC, interruptible=False))
    row = await as_vast_shows_it(cloud, info.instance_id)
    assert row["is_bid"] is False
    assert gpu_price(row) == pytest.approx(float(row["dph_base"]), abs=1e-5)
    await destroy(provider_activities, mid)


async def test_a_bid_no_offer_meets_is_no_matching_offer_saying_so(
    cloud: SimHandle, provider_activities: ProviderActivities, mid: str
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await provision(provider_activities, mid, replace(SPEC, bid_price=0.0001))
    assert raised.value.type == ErrorType.NO_MATCHING_OFFER and raised.value.non_retryable
    assert "interruptible, bidding $0.0001/h" in raised.value.message
    assert [i for i in await cloud.admin.instances() if mid in (i["label"] or "")] == []
