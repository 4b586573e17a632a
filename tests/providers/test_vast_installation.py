"""vast.ai labels carry the installation that made them: two installations on one account never
take each other's instances for their own, and an instance labelled before installations were
marked still belongs to whoever has it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers.base import CreateRequest, OfferQuery
from providers.retry import RetryPolicy
from providers.vast import VastProvider
from tests.fixtures.sim import SimHandle, running_sim

FAST = RetryPolicy(max_retries=1, initial_delay=0.01, max_delay=0.05)
IMAGE = "pytorch/pytorch:latest"


@pytest.fixture(scope="module")
async def cloud(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    data_dir: Path = tmp_path_factory.mktemp("installations") / "sim"
    async with running_sim(data_dir) as handle:
        yield handle


def provider(cloud: SimHandle, installation: str | None) -> VastProvider:
    return VastProvider(cloud.url, cloud.api_key, retry=FAST, installation=installation)


async def test_installations_keep_to_their_own_instances(cloud: SimHandle) -> None:
    ours, theirs, legacy = provider(cloud, "iours0001"), provider(cloud, "itheirs02"), None
    try:
        first, second, third = await ours.search_offers(OfferQuery(limit=3))
        label = "dumont-m-0000000000b1-1"
        mine = await ours.create_instance(CreateRequest(first.offer_id, IMAGE, 10, label))
        assert mine.label == label  # read back without the installation
        stored = {i["id"]: i["label"] for i in await cloud.admin.instances()}
        assert stored[int(mine.instance_id)] == f"{label}@iours0001"

        # The other installation does not see it, and renting its own makes a second instance.
        assert await theirs.find_by_exact_label(label) == []
        assert await theirs.find_by_label("dumont-") == []
        other = await theirs.create_instance(CreateRequest(second.offer_id, IMAGE, 10, label))
        assert other.instance_id != mine.instance_id
        assert [i.instance_id for i in await ours.find_by_exact_label(label)] == [mine.instance_id]
        assert (await theirs.get_instance(mine.instance_id)).label is None  # type: ignore[union-attr]

        # An instance from before installations were marked is still adopted by its label.
        legacy = provider(cloud, None)
        old_label = "dumont-m-0000000000b2-1"
        old = await legacy.create_instance(CreateRequest(third.offer_id, IMAGE, 10, old_label))
        assert [i.instance_id for i in await ours.find_by_exact_label(old_label)] == [
            old.instance_id
        ]
        assert old.instance_id in {i.instance_id for i in await ours.find_by_label("dumont-m-")}
    finally:
        for p in (ours, theirs, legacy):
            if p is not None:
                await p.aclose()
