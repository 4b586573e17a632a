"""A service's ports and environment through VastProvider against the local marketplace: the
create body carries the variables and one `-p` entry per port, and a running instance shows
each port's public address as the marketplace reports it (and its disk's price)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.contracts.states import InstanceStatus
from providers.base import CreateRequest, OfferQuery
from providers.retry import RetryPolicy
from providers.vast import VastProvider
from tests.fixtures.sim import SimHandle
from tests.providers.test_vast_sim import wait_for

FAST = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.05)


@pytest.fixture
async def vast(sim: SimHandle) -> AsyncIterator[VastProvider]:
    provider = VastProvider(sim.url, sim.api_key, retry=FAST)
    yield provider
    await provider.aclose()


async def test_a_service_is_created_with_its_env_and_ports_and_shows_their_addresses(
    vast: VastProvider, sim: SimHandle
) -> None:
    (offer,) = await vast.search_offers(OfferQuery(limit=1))
    created = await vast.create_instance(
        CreateRequest(
            offer.offer_id,
            "ubuntu:22.04",
            20,
            "dumont-svc-1",
            env={"MODEL": "llama"},
            ports=["18000/tcp", "18053/udp"],
        )
    )
    row = await sim.admin.instance(int(created.instance_id))
    assert sorted(map(tuple, row["extra_env"])) == [
        ("-p 18000:18000", "1"),
        ("-p 18053:18053/udp", "1"),
        ("MODEL", "llama"),
    ]
    assert row["onstart"] is None  # Dumont runs the on-start itself, after the workspace is in

    running = await wait_for(vast, created.instance_id, InstanceStatus.RUNNING)
    row = await sim.admin.instance(int(created.instance_id))
    host = row["public_ipaddr"].strip()
    assert running.ports == {
        port: f"{host}:{row['ports'][port][0]['HostPort']}" for port in ("18000/tcp", "18053/udp")
    }
    assert running.disk_price_per_hour == pytest.approx(row["storage_cost"] * 20 / 720, rel=1e-3)
    await vast.destroy_instance(created.instance_id)
