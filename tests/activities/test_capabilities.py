"""Provider activities call only what the machine's provider can do, and say why when it can't.

In-memory providers with fewer capabilities than vast (tests/fixtures/providers.py), and vast
pointed at nothing for the refusals that happen before any call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.offers import describe_search, offer_query
from activities.provider import ProviderActivities
from core.contracts import instance_label
from core.contracts.activities import (
    AttachKeysInput,
    DestroyInstancesInput,
    InstanceActionInput,
    ProvisionInput,
)
from core.contracts.errors import ErrorType
from core.contracts.machine import InstanceInfo, MachineKind, MachineSpec
from core.contracts.providers import ProviderFeature
from core.ssh import SshIdentity
from providers.base import unsupported_map
from providers.registry import ProviderRegistry
from providers.vast import VastProvider
from tests.fixtures.providers import CORE_REASONS, CoreOnlyProvider, CoreWithOffersProvider

MID = "m-0123456789ab"
CPU_SPEC = MachineSpec(kind=MachineKind.CPU, image="ubuntu", disk_gb=20, provider="core-offers")


@pytest.fixture
def core() -> CoreOnlyProvider:
    return CoreOnlyProvider()


@pytest.fixture
def offers() -> CoreWithOffersProvider:
    return CoreWithOffersProvider()


@pytest.fixture
async def acts(
    core: CoreOnlyProvider, offers: CoreWithOffersProvider, identity: SshIdentity
) -> AsyncIterator[ProviderActivities]:
    registry = ProviderRegistry(
        {"core": core, "core-offers": offers, "vast": VastProvider("http://127.0.0.1:1/", "k")}
    )
    yield ProviderActivities(registry, identity, poll_seconds=0.01)
    await registry.aclose()


async def provision(acts: ProviderActivities, spec: MachineSpec) -> InstanceInfo:
    return await ActivityEnvironment().run(
        acts.provision_instance,
        ProvisionInput(machine_id=MID, spec=spec, label=instance_label(MID, 1)),
    )


async def refused(call: Awaitable[object]) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        await call
    assert raised.value.type == ErrorType.UNSUPPORTED and raised.value.non_retryable
    return raised.value


def core_instance(provider: str = "core") -> InstanceInfo:
    return InstanceInfo(
        provider=provider,
        instance_id="i-1",
        label=instance_label(MID, 1),
        offer_id="",
        gpu_name="",
        num_gpus=0,
        price_per_hour=0.1,
    )


@pytest.mark.parametrize(
    ("action", "feature"),
    [
        ("stop_instance", ProviderFeature.STOP_START),
        ("start_instance", ProviderFeature.STOP_START),
        ("reboot_instance", ProviderFeature.REBOOT),
    ],
)
async def test_an_action_the_provider_cannot_do_fails_with_its_reason(
    acts: ProviderActivities, core: CoreOnlyProvider, action: str, feature: ProviderFeature
) -> None:
    run = getattr(acts, action)
    error = await refused(
        ActivityEnvironment().run(run, InstanceActionInput(instance=core_instance()))
    )
    assert error.message == CORE_REASONS[feature]
    assert core.calls == []


async def test_provisioning_needs_an_offer_marketplace(
    acts: ProviderActivities, core: CoreOnlyProvider
) -> None:
    error = await refused(provision(acts, replace(CPU_SPEC, provider="core")))
    assert CORE_REASONS[ProviderFeature.OFFER_MARKETPLACE] in error.message
    assert error.message.startswith("cannot provision on core:")
    assert core.calls == []


async def test_provisioning_without_key_apis_puts_dumonts_key_in_the_create(
    acts: ProviderActivities, offers: CoreWithOffersProvider, identity: SshIdentity
) -> None:
    info = await provision(acts, CPU_SPEC)

    # No account key, no attach: neither exists on this provider.
    assert offers.calls == ["find_by_exact_label", "search_offers", "create_instance"]
    [request] = offers.created
    assert request.ssh_keys == [identity.public_key]
    assert request.provider_data == {"zone": "zone-a", "machine_type": "cpu-4"}
    assert info.provider_data == {"zone": "zone-a", "machine_type": "cpu-4"}
    assert info.offer_id == "cpu-4@zone-a"
    assert info.unsupported == unsupported_map(offers)
    assert info.unsupported["stop_start"] == CORE_REASONS[ProviderFeature.STOP_START]

    again = await provision(acts, CPU_SPEC)  # a retried activity adopts, and says the same
    assert again.instance_id == info.instance_id and again.unsupported == info.unsupported
    assert len(offers.created) == 1


async def test_attaching_keys_where_they_go_in_at_creation_says_so(
    acts: ProviderActivities, offers: CoreWithOffersProvider
) -> None:
    info = await provision(acts, CPU_SPEC)
    offers.calls.clear()
    result = await ActivityEnvironment().run(
        acts.attach_ssh_keys, AttachKeysInput(instance=info, public_keys=["ssh-ed25519 AAAA x"])
    )
    assert result.attached == 0
    assert result.detail is not None and "only at creation" in result.detail
    assert CORE_REASONS[ProviderFeature.INSTANCE_SSH_KEYS] in result.detail
    assert offers.calls == []


async def test_destroy_needs_only_the_core(
    acts: ProviderActivities, offers: CoreWithOffersProvider
) -> None:
    await provision(acts, CPU_SPEC)
    result = await ActivityEnvironment().run(
        acts.destroy_instances, DestroyInstancesInput(provider="core-offers", machine_id=MID)
    )
    assert [d.label for d in result.destroyed] == [instance_label(MID, 1)]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (
            MachineSpec(kind=MachineKind.CPU, image="x", disk_gb=20),
            "vast.ai rents GPU machines only",
        ),
        (
            MachineSpec(gpu_name="RTX 4090", image="x", disk_gb=20, provider="core-offers"),
            CORE_REASONS[ProviderFeature.GPU_MACHINES],
        ),
    ],
    ids=["cpu-on-vast", "gpu-on-a-cpu-provider"],
)
async def test_a_machine_kind_the_provider_does_not_rent_is_refused(
    acts: ProviderActivities, offers: CoreWithOffersProvider, spec: MachineSpec, reason: str
) -> None:
    error = await refused(provision(acts, spec))
    assert error.message == reason
    assert offers.calls == []


def test_offer_searches_for_a_cpu_machine_or_any_gpu() -> None:
    cpu = MachineSpec(kind=MachineKind.CPU, image="x", disk_gb=20, min_vram_gb=24, region="EU")
    query = offer_query(cpu, limit=5)
    assert query.kind is MachineKind.CPU
    assert query.gpu_name is None and query.num_gpus is None and query.min_vram_gb is None
    assert describe_search(cpu) == "vast offers for a CPU machine, 20 GB disk, region EU"

    any_gpu = MachineSpec(image="x", disk_gb=20, num_gpus=2)
    assert offer_query(any_gpu, limit=5).gpu_name is None
    assert describe_search(any_gpu).startswith("vast offers for 2x any GPU, 20 GB disk")
