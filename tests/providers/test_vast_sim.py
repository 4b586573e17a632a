"""VastProvider against the local vast.ai-compatible marketplace (a real `python -m sim`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import asyncssh
import httpx
import pytest
from pydantic import SecretStr

from core.contracts.providers import ProviderFeature
from core.contracts.states import InstanceStatus
from core.regions import REGIONS
from core.settings import Settings
from providers.base import (
    AuthError,
    CreateRequest,
    InvalidRequest,
    Offer,
    OfferQuery,
    OfferUnavailable,
    ProviderError,
    ProviderInstance,
    RateLimited,
)
from providers.registry import ProviderRegistry
from providers.retry import RetryPolicy
from providers.vast import VastProvider
from tests.fixtures.sim import SimHandle, running_sim

FAST = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.05)
ATTEMPTS = FAST.max_retries + 1
IMAGE = "pytorch/pytorch:latest"


@pytest.fixture(scope="module")
async def cloud(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    """One marketplace for the module (a sim start is ~1 s): tests use their own labels and
    offers, and check only those."""
    async with running_sim(tmp_path_factory.mktemp("cloud") / "sim") as handle:
        yield handle


@pytest.fixture
async def vast(cloud: SimHandle) -> AsyncIterator[VastProvider]:
    provider = VastProvider(cloud.url, cloud.api_key, retry=FAST)
    yield provider
    await provider.aclose()
    await cloud.admin.clear_faults()  # a failed test must not leave faults to the next


async def labelled(cloud: SimHandle, prefix: str) -> list[int]:
    """Ids of the sim's instances whose label starts with `prefix`, as the sim itself sees them."""
    return [i["id"] for i in await cloud.admin.instances() if (i["label"] or "").startswith(prefix)]


async def offers(vast: VastProvider, count: int) -> list[Offer]:
    found = await vast.search_offers(OfferQuery(limit=count))
    assert len(found) == count
    return found


async def wait_for(
    vast: VastProvider, instance_id: str, status: InstanceStatus, within: float = 30.0
) -> ProviderInstance:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        instance = await vast.get_instance(instance_id)
        if instance is not None and instance.status is status:
            return instance
        if loop.time() > deadline:
            raise AssertionError(f"instance {instance_id} never became {status}: {instance}")
        await asyncio.sleep(0.05)


async def ssh_banner(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


def new_public_key() -> tuple[asyncssh.SSHKey, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key, key.export_public_key().decode().strip()


# --- search -----------------------------------------------------------------------------

FILTERS: list[tuple[OfferQuery, Callable[[Offer], bool]]] = [
    (OfferQuery(gpu_name="RTX_4090"), lambda o: o.gpu_name == "RTX 4090"),
    (OfferQuery(num_gpus=2), lambda o: o.num_gpus == 2),
    (OfferQuery(max_price=0.3), lambda o: o.price_per_hour <= 0.3),
    (OfferQuery(region="EU"), lambda o: o.country in REGIONS["EU"]),
    (OfferQuery(region="jp"), lambda o: o.country == "JP"),
    (OfferQuery(min_reliability=0.97), lambda o: o.reliability >= 0.97),
    (OfferQuery(min_vram_gb=40), lambda o: o.gpu_ram_gb >= 40),
    (OfferQuery(min_disk_gb=1000), lambda o: o.disk_space_gb >= 1000),
]


@pytest.mark.parametrize(("query", "admits"), FILTERS)
async def test_each_filter_returns_exactly_the_offers_it_admits(vast, query, admits):
    everything = await vast.search_offers(OfferQuery(limit=1000))
    found = await vast.search_offers(replace(query, limit=1000))
    assert found, "the filter admits some offers of the market"
    assert {o.offer_id for o in found} == {o.offer_id for o in everything if admits(o)}
    assert len(found) < len(everything), "the filter rules some offers out"


async def test_filters_combine_and_limit_caps(vast):
    found = await vast.search_offers(
        OfferQuery(gpu_name="RTX 3090", num_gpus=1, region="NA", max_price=0.5, limit=3)
    )
    assert 0 < len(found) <= 3
    for offer in found:
        assert (offer.gpu_name, offer.num_gpus, offer.country in REGIONS["NA"]) == (
            "RTX 3090",
            1,
            True,
        )
        assert offer.price_per_hour <= 0.5


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("price", lambda o: o.price_per_hour),
        ("reliability", lambda o: -o.reliability),
        ("vram", lambda o: -o.gpu_ram_gb),
    ],
)
async def test_sorts(vast, sort, key):
    found = await vast.search_offers(OfferQuery(sort=sort, limit=40))
    assert len(found) == 40
    assert [key(o) for o in found] == sorted(key(o) for o in found)


async def test_sort_by_score_keeps_vasts_best_first(vast, cloud):
    found = await vast.search_offers(OfferQuery(sort="score", limit=40))
    # vast's own scores, read straight from the API.
    async with cloud.client() as client:
        response = await client.post(
            "/api/v0/bundles/", json={"limit": 1000, "allocated_storage": 10.0}
        )
    score = {str(row["id"]): row["score"] for row in response.json()["offers"]}
    scores = [score[o.offer_id] for o in found]
    assert scores == sorted(scores, reverse=True)
    cheapest = await vast.search_offers(OfferQuery(sort="price", limit=40))
    assert [o.offer_id for o in found] != [o.offer_id for o in cheapest]


async def test_unknown_region_is_refused(vast):
    with pytest.raises(InvalidRequest, match="unknown region 'Mars'"):
        await vast.search_offers(OfferQuery(region="Mars"))


async def test_the_registry_builds_a_working_vast_provider(cloud):
    registry = ProviderRegistry.from_settings(
        Settings(vast_url=cloud.url, vast_api_key=SecretStr(cloud.api_key))
    )
    try:
        [vast] = registry.with_feature(ProviderFeature.OFFER_MARKETPLACE, "vast")
        assert len(await vast.search_offers(OfferQuery(limit=2))) == 2
    finally:
        await registry.aclose()


# --- create and lifecycle ---------------------------------------------------------------


async def test_create_boots_to_running_with_a_reachable_ssh_address(vast, cloud):
    offer = (await offers(vast, 1))[0]
    created = await vast.create_instance(
        CreateRequest(offer.offer_id, IMAGE, 20, "dumont-m1-1", env={"ROLE": "test"})
    )
    assert created.label == "dumont-m1-1"
    assert created.status in (InstanceStatus.PROVISIONING, InstanceStatus.RUNNING)
    assert created.gpu_name == offer.gpu_name

    running = await wait_for(vast, created.instance_id, InstanceStatus.RUNNING)
    assert running.ssh_host and running.ssh_port
    assert (await ssh_banner(running.ssh_host, running.ssh_port)).startswith(b"SSH-2.0")
    # The offer is rented now: it left the market.
    assert offer.offer_id not in {
        o.offer_id for o in await vast.search_offers(OfferQuery(limit=1000))
    }


async def test_the_same_label_twice_adopts_the_first_instance(vast, cloud):
    first_offer, second_offer = await offers(vast, 2)
    first = await vast.create_instance(
        CreateRequest(first_offer.offer_id, IMAGE, 10, "dumont-m2-1")
    )
    again = await vast.create_instance(
        CreateRequest(second_offer.offer_id, IMAGE, 10, "dumont-m2-1")
    )
    assert again.instance_id == first.instance_id
    assert await labelled(cloud, "dumont-m2-") == [int(first.instance_id)]
    # The second offer was never rented.
    market = await vast.search_offers(OfferQuery(limit=1000))
    assert second_offer.offer_id in {o.offer_id for o in market}


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_on_create_rents_once(vast, cloud, status):
    offer = (await offers(vast, 1))[0]
    await cloud.admin.fail_next(1, status=status, path_prefix="/api/v0/asks/", method="PUT")
    created = await vast.create_instance(
        CreateRequest(offer.offer_id, IMAGE, 10, f"dumont-m3{status}-1")
    )
    assert await labelled(cloud, f"dumont-m3{status}-") == [int(created.instance_id)]
    found = await vast.find_by_label(f"dumont-m3{status}-")
    assert [i.instance_id for i in found] == [created.instance_id]


class LosesFirstCreateAnswer(httpx.AsyncBaseTransport):
    """A real connection to the sim whose first create answer is lost after the sim acted."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if (
            request.method == "PUT"
            and request.url.path.startswith("/api/v0/asks/")
            and not self.lost
        ):
            await response.aread()
            await response.aclose()
            self.lost += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_lost_create_answer_adopts_the_instance_by_label(cloud):
    transport = LosesFirstCreateAnswer()
    vast = VastProvider(cloud.url, cloud.api_key, retry=FAST, transport=transport)
    try:
        offer = (await offers(vast, 1))[0]
        created = await vast.create_instance(
            CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m4-1")
        )
        assert transport.lost == 1
        assert created.label == "dumont-m4-1"
        assert await labelled(cloud, "dumont-m4-") == [int(created.instance_id)]
    finally:
        await vast.aclose()


async def test_5xx_beyond_the_create_budget_fails_without_renting(vast, cloud):
    offer = (await offers(vast, 1))[0]
    await cloud.admin.fail_next(ATTEMPTS, status=503, path_prefix="/api/v0/asks/", method="PUT")
    with pytest.raises(ProviderError, match=f"create instance on offer {offer.offer_id}") as caught:
        await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m5-1"))
    assert caught.value.retryable
    assert await labelled(cloud, "dumont-m5-") == []


async def test_a_taken_offer_is_unavailable(vast, cloud):
    offer = (await offers(vast, 1))[0]
    await cloud.admin.take_offer(int(offer.offer_id))
    with pytest.raises(OfferUnavailable, match="no_such_ask") as caught:
        await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m6-1"))
    assert not caught.value.retryable
    assert await vast.find_by_label("dumont-m6-") == []


async def test_stop_start_and_reboot(vast, cloud):
    offer = (await offers(vast, 1))[0]
    # Each boot runs onstart, so the file counts boots.
    created = await vast.create_instance(
        CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m7-1", onstart='echo up >> "$HOME/boots"')
    )
    instance_id = created.instance_id
    await wait_for(vast, instance_id, InstanceStatus.RUNNING)
    boots = Path((await cloud.admin.instance(int(instance_id)))["home_path"]) / "boots"

    await vast.stop_instance(instance_id)
    stopped = await wait_for(vast, instance_id, InstanceStatus.STOPPED)
    assert stopped.raw_status == "stopped"

    await vast.start_instance(instance_id)
    running = await wait_for(vast, instance_id, InstanceStatus.RUNNING)
    assert running.ssh_host and running.ssh_port
    assert (await ssh_banner(running.ssh_host, running.ssh_port)).startswith(b"SSH-2.0")

    await vast.reboot_instance(instance_id)
    await wait_for(vast, instance_id, InstanceStatus.RUNNING)
    await wait_for_lines(boots, 3)  # create, start, reboot


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def wait_for_lines(path: Path, count: int, within: float = 60.0) -> None:
    """Until `path` has `count` lines: onstart runs in the background after a boot, and a loaded
    machine may take a while to spawn it (the limit only ends a test that would hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await asyncio.to_thread(line_count, path) < count:
        if loop.time() > deadline:
            raise AssertionError(f"{path} never had {count} lines")
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(line_count, path) == count


async def test_an_instance_that_cannot_boot_is_failed(vast, cloud):
    offer = (await offers(vast, 1))[0]
    await cloud.admin.fail_next_create(1)
    created = await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m8-1"))
    failed = await wait_for(vast, created.instance_id, InstanceStatus.FAILED)
    assert failed.status_msg and "OCI runtime create failed" in failed.status_msg


async def test_a_spot_loss_shows_as_stopped(vast, cloud):
    offer = (await offers(vast, 1))[0]
    created = await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m9-1"))
    await wait_for(vast, created.instance_id, InstanceStatus.RUNNING)
    await cloud.admin.interrupt(int(created.instance_id))
    assert (await vast.get_instance(created.instance_id)).status is InstanceStatus.STOPPED


async def test_destroy_twice_succeeds_and_the_instance_is_gone(vast, cloud):
    offer = (await offers(vast, 1))[0]
    created = await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m10-1"))
    await vast.destroy_instance(created.instance_id)
    await vast.destroy_instance(created.instance_id)
    assert await vast.get_instance(created.instance_id) is None
    assert await vast.find_by_label("dumont-m10-") == []
    assert await labelled(cloud, "dumont-m10-") == []


async def test_find_by_label_pages_through_every_instance(vast, cloud):
    market = await offers(vast, 30)
    async with cloud.client() as client:
        for n, offer in enumerate(market):
            label = f"dumont-page-{n}" if n < 27 else f"someone-else-{n}"
            response = await client.put(
                f"/api/v0/asks/{offer.offer_id}/",
                json={
                    "client_id": "me",
                    "image": IMAGE,
                    "disk": 10,
                    "label": label,
                    "target_state": "stopped",
                },
            )
            assert response.json()["success"], response.text
    found = await vast.find_by_label("dumont-page-")
    assert sorted(i.label for i in found) == sorted(f"dumont-page-{n}" for n in range(27))
    assert all(i.status is InstanceStatus.STOPPED for i in found)
    exact = await vast.find_by_exact_label("dumont-page-2")
    assert [i.label for i in exact] == ["dumont-page-2"]


# --- keys ---------------------------------------------------------------------------------


async def test_account_key_is_added_once_and_reaches_new_instances(vast, cloud):
    private, public = new_public_key()
    await vast.ensure_account_ssh_key(public)
    await vast.ensure_account_ssh_key(public + " again-with-a-comment")
    async with cloud.client() as client:
        keys = (await client.get("/api/v0/ssh/")).json()
    assert len(keys) == 1

    offer = (await offers(vast, 1))[0]
    created = await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m11-1"))
    running = await wait_for(vast, created.instance_id, InstanceStatus.RUNNING)
    await assert_can_log_in(running, private)


async def test_an_attached_key_can_log_in(vast, cloud):
    offer = (await offers(vast, 1))[0]
    created = await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m12-1"))
    running = await wait_for(vast, created.instance_id, InstanceStatus.RUNNING)
    private, public = new_public_key()
    with pytest.raises(asyncssh.PermissionDenied):
        await assert_can_log_in(running, private)
    await vast.attach_ssh_key(created.instance_id, public)
    await assert_can_log_in(running, private)


async def assert_can_log_in(instance: ProviderInstance, key: asyncssh.SSHKey) -> None:
    async with asyncssh.connect(
        instance.ssh_host,
        instance.ssh_port,
        username="root",
        client_keys=[key],
        known_hosts=None,
        agent_path=None,
    ) as connection:
        result = await connection.run("echo hello", check=True)
    assert result.stdout == "hello\n"


# --- rate limits, outages, auth -------------------------------------------------------------


async def test_a_429_storm_is_ridden_out(vast, cloud):
    await cloud.admin.fail_next(3, status=429)
    assert len(await vast.search_offers(OfferQuery(limit=3))) == 3
    await cloud.admin.fail_next(3, status=429, body="json", retry_after=0.05)
    assert await vast.find_by_label("nothing-") == []
    assert (await cloud.admin.status())["faults"] == []


async def test_429_beyond_the_budget_is_rate_limited(vast, cloud):
    await cloud.admin.fail_next(ATTEMPTS, status=429, retry_after=0.01)
    with pytest.raises(RateLimited, match="search offers") as caught:
        await vast.search_offers(OfferQuery())
    assert caught.value.retry_after == pytest.approx(0.01)
    assert len(await vast.search_offers(OfferQuery(limit=1))) == 1  # the storm is over


async def test_5xx_beyond_the_budget_is_a_provider_error(vast, cloud):
    await cloud.admin.fail_next(ATTEMPTS, status=503, path_prefix="/api/v0/instances/")
    with pytest.raises(ProviderError, match="get instance 42 failed") as caught:
        await vast.get_instance("42")
    assert caught.value.retryable and caught.value.status_code == 503
    # Every attempt of the budget was spent, and the next call goes through.
    assert (await cloud.admin.status())["faults"] == []
    assert await vast.get_instance("42") is None


async def test_sim_restart_mid_session(vast, cloud):
    offer = (await offers(vast, 1))[0]
    created = await vast.create_instance(CreateRequest(offer.offer_id, IMAGE, 10, "dumont-m13-1"))
    await cloud.restart()
    assert (await vast.find_by_label("dumont-m13-"))[0].instance_id == created.instance_id


async def test_a_bad_key_is_an_auth_error_that_never_shows_the_key(cloud):
    bad_key = "not-the-key-" + "x" * 20
    vast = VastProvider(cloud.url, bad_key, retry=FAST)
    try:
        with pytest.raises(AuthError) as caught:
            await vast.search_offers(OfferQuery())
        assert bad_key not in str(caught.value)
        with pytest.raises(AuthError, match="Invalid user key"):
            await vast.find_by_label("dumont-")
        with pytest.raises(AuthError):
            await vast.destroy_instance("1")
    finally:
        await vast.aclose()
