"""Provider activities against the local cloud: real HTTP, real sandbox machines, real SSH."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncssh
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import as_application_error
from activities.provider import ProviderActivities
from core.contracts import instance_label
from core.contracts.activities import (
    AttachKeysInput,
    DestroyInstancesInput,
    InstanceActionInput,
    ProvisionInput,
    WaitReadyInput,
)
from core.contracts.errors import ErrorType
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.providers import ProviderFeature
from core.contracts.states import InstanceStatus
from core.ssh import SshIdentity
from providers.base import InstanceNotFound, Offer, OfferQuery, RateLimited
from providers.registry import ProviderRegistry
from tests.fixtures.sim import SimHandle

SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch", disk_gb=20, region="NA")


def soon(seconds: float = 30) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.fixture
def mid() -> str:
    """A machine id of this test's own: the tests share one local cloud."""
    return f"m{uuid.uuid4().hex[:8]}"


async def provision(acts: ProviderActivities, machine_id: str, attempt: int = 1) -> InstanceInfo:
    return await ActivityEnvironment().run(
        acts.provision_instance,
        ProvisionInput(machine_id=machine_id, spec=SPEC, label=instance_label(machine_id, attempt)),
    )


async def cheapest(registry: ProviderRegistry) -> list[Offer]:
    [vast] = registry.with_feature(ProviderFeature.OFFER_MARKETPLACE, "vast")
    offers = await vast.search_offers(
        OfferQuery(gpu_name="RTX 4090", num_gpus=1, region="NA", min_disk_gb=20, limit=50)
    )
    return sorted(offers, key=lambda o: o.price_per_hour)


async def live_labels(cloud: SimHandle, machine_id: str) -> list[str]:
    return sorted(
        i["label"]
        for i in await cloud.admin.instances()
        if i["actual_status"] != "destroyed" and machine_id in (i["label"] or "")
    )


async def test_provision_rents_the_cheapest_match_once_per_label(
    cloud: SimHandle, registry: ProviderRegistry, provider_activities: ProviderActivities, mid: str
) -> None:
    label = instance_label(mid, 1)
    best = (await cheapest(registry))[0]
    info = await provision(provider_activities, mid)
    again = await provision(provider_activities, mid)  # a retried activity

    assert again.instance_id == info.instance_id
    assert info.offer_id == best.offer_id
    assert info.gpu_name == "RTX 4090" and info.label == label and info.price_per_hour > 0
    assert info.unsupported == {
        "cpu_machines": "vast.ai rents GPU machines only",
        "machine_catalogue": "vast.ai sells live offers, not machine types",
    }
    assert await live_labels(cloud, mid) == [label]


async def test_provision_moves_on_when_the_offer_is_taken_meanwhile(
    cloud: SimHandle, registry: ProviderRegistry, identity: SshIdentity, mid: str
) -> None:
    offers = await cheapest(registry)
    [vast] = registry.with_feature(ProviderFeature.OFFER_MARKETPLACE, "vast")

    class RacedProvider:
        """The real provider, but someone rents the cheapest offer right after our search."""

        def __getattr__(self, name: str) -> object:
            return getattr(vast, name)

        async def search_offers(self, query: OfferQuery) -> list[Offer]:
            found = await vast.search_offers(query)
            await cloud.admin.take_offer(int(offers[0].offer_id))
            return found

    acts = ProviderActivities(ProviderRegistry({"vast": RacedProvider()}), identity)  # type: ignore[dict-item]
    try:
        info = await provision(acts, mid)
    finally:
        await cloud.admin.release_offer(int(offers[0].offer_id))
    assert info.offer_id == offers[1].offer_id


async def test_no_matching_offer_says_what_was_searched(
    provider_activities: ProviderActivities, mid: str
) -> None:
    spec = MachineSpec(gpu_name="RTX 4090", image="x", disk_gb=20, region="NA", max_price=0.0001)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            provider_activities.provision_instance,
            ProvisionInput(machine_id=mid, spec=spec, label=instance_label(mid, 1)),
        )
    assert raised.value.type == ErrorType.NO_MATCHING_OFFER and raised.value.non_retryable
    assert "1x RTX 4090" in raised.value.message and "region NA" in raised.value.message
    assert "$0.000/h" in raised.value.message


async def test_instance_answers_ssh_with_dumonts_key_and_the_owners_key(
    cloud: SimHandle, provider_activities: ProviderActivities, mid: str
) -> None:
    owner_key = asyncssh.generate_private_key("ssh-ed25519")
    info = await provision(provider_activities, mid)
    env = ActivityEnvironment()
    await env.run(
        provider_activities.attach_ssh_keys,
        AttachKeysInput(instance=info, public_keys=[owner_key.export_public_key().decode()]),
    )
    result = await env.run(
        provider_activities.wait_until_ready, WaitReadyInput(instance=info, deadline=soon())
    )

    assert result.ready and result.instance.ssh_host and result.instance.ssh_port
    async with asyncssh.connect(
        result.instance.ssh_host,
        result.instance.ssh_port,
        username="root",
        client_keys=[owner_key],
        known_hosts=None,
        agent_path=None,
        config=None,
    ) as conn:
        assert (await conn.run("echo hello", check=True)).stdout == "hello\n"

    stopped = await env.run(provider_activities.stop_instance, InstanceActionInput(instance=info))
    assert stopped.status is InstanceStatus.STOPPED
    await env.run(provider_activities.start_instance, InstanceActionInput(instance=info))
    assert (
        await env.run(
            provider_activities.wait_until_ready, WaitReadyInput(instance=info, deadline=soon())
        )
    ).ready


async def test_wait_gives_up_at_the_deadline_and_reports_what_it_saw(
    cloud: SimHandle, provider_activities: ProviderActivities, mid: str
) -> None:
    await cloud.admin.set_boot_delay(600)
    heartbeats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.extend(details)
    try:
        info = await provision(provider_activities, mid)
        result = await env.run(
            provider_activities.wait_until_ready, WaitReadyInput(instance=info, deadline=soon(1))
        )
    finally:
        await cloud.admin.set_boot_delay(0.3)  # the other tests share this cloud
    assert not result.ready
    assert result.detail is not None and "provider reports" in result.detail
    assert heartbeats


async def test_an_instance_that_never_boots_is_reported_failed(
    cloud: SimHandle, provider_activities: ProviderActivities, mid: str
) -> None:
    await cloud.admin.fail_next_create(1)
    info = await provision(provider_activities, mid)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            provider_activities.wait_until_ready, WaitReadyInput(instance=info, deadline=soon())
        )
    assert raised.value.type == ErrorType.INSTANCE_FAILED and raised.value.non_retryable


async def test_destroy_takes_every_instance_of_the_machine_and_no_other(
    cloud: SimHandle, provider_activities: ProviderActivities, mid: str
) -> None:
    env = ActivityEnvironment()
    for machine_id, attempt in ((mid, 1), (mid, 2), (f"{mid}-b", 1)):
        await provision(provider_activities, machine_id, attempt)
    one = await env.run(
        provider_activities.destroy_instances,
        DestroyInstancesInput(provider="vast", machine_id=mid, label=instance_label(mid, 1)),
    )
    assert [d.label for d in one.destroyed] == [f"dumont-{mid}-1"]
    rest = await env.run(
        provider_activities.destroy_instances,
        DestroyInstancesInput(provider="vast", machine_id=mid),
    )
    assert [d.label for d in rest.destroyed] == [f"dumont-{mid}-2"]
    assert await live_labels(cloud, mid) == [f"dumont-{mid}-b-1"]
    again = await env.run(
        provider_activities.destroy_instances,
        DestroyInstancesInput(provider="vast", machine_id=mid),
    )
    assert again.destroyed == []


def test_provider_errors_keep_their_retry_decision() -> None:
    limited = as_application_error(RateLimited("slow down", retry_after=42))
    assert limited.type == ErrorType.RATE_LIMITED and not limited.non_retryable
    assert limited.next_retry_delay == timedelta(seconds=42)
    gone = as_application_error(InstanceNotFound("no such instance"))
    assert gone.type == ErrorType.INSTANCE_GONE and gone.non_retryable
