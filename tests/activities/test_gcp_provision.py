"""A GCP CPU machine through the provider activities: the cheapest catalogue offer, the next
zone on a stockout and the next region when a whole region is out, offers never held back
from other machines (a catalogue is not a marketplace), and a start that waits for room."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.provider import ProviderActivities
from core.contracts import instance_label
from core.contracts.activities import InstanceActionInput, ProvisionInput, WaitReadyInput
from core.contracts.machine import InstanceInfo, MachineKind, MachineSpec
from core.contracts.states import InstanceStatus
from core.ssh import SshIdentity, ensure_identity
from providers.gcp import GcpProvider
from providers.registry import ProviderRegistry
from tests.fixtures.sim import SimHandle, running_sim
from tests.providers.gcp_helpers import gcp_provider

SPEC = MachineSpec(
    kind=MachineKind.CPU, image="debian-12", disk_gb=10, provider="gcp", machine_type="e2-small"
)
US_ZONES = ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f")


@pytest.fixture(scope="module")
async def gce_sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    data_dir: Path = tmp_path_factory.mktemp("gcp-provision") / "sim"
    async with running_sim(data_dir, boot_delay=0.2) as handle:
        yield handle


@pytest.fixture
async def gcp(gce_sim: SimHandle) -> AsyncIterator[GcpProvider]:
    provider = gcp_provider(gce_sim, project="provision")
    yield provider
    await provider.aclose()
    for zone in US_ZONES:
        await gce_sim.gce_admin.clear_stockout(zone)


@pytest.fixture
def acts(gcp: GcpProvider, tmp_path: Path) -> ProviderActivities:
    identity: SshIdentity = ensure_identity(tmp_path / "id_ed25519")
    return ProviderActivities(ProviderRegistry({"gcp": gcp}), identity, poll_seconds=0.1)


async def provision(
    acts: ProviderActivities, machine_id: str, spec: MachineSpec = SPEC
) -> InstanceInfo:
    return await ActivityEnvironment().run(
        acts.provision_instance,
        ProvisionInput(machine_id=machine_id, spec=spec, label=instance_label(machine_id, 1)),
    )


async def test_the_cheapest_zone_of_the_cheapest_region(acts: ProviderActivities) -> None:
    info = await provision(acts, "m-0000000000c1")
    assert info.provider == "gcp" and info.offer_id.startswith("e2-small@us-central1-")
    assert info.provider_data["zone"].startswith("us-central1-")
    assert (info.ssh_user, info.num_gpus, info.gpu_name) == ("dumont", 0, "")
    assert info.unsupported["gpu_machines"].startswith("Dumont rents CPU VMs on GCP")
    again = await provision(acts, "m-0000000000c1")  # a retried activity adopts
    assert again.instance_id == info.instance_id


async def test_a_region_out_of_capacity_moves_to_the_next_region(
    acts: ProviderActivities, gce_sim: SimHandle
) -> None:
    for zone in US_ZONES:
        await gce_sim.gce_admin.stockout(zone)
    info = await provision(acts, "m-0000000000c2")
    # e2-small: Iowa $0.0168/h, then Belgium $0.0184/h, then São Paulo $0.0266/h.
    assert info.provider_data["zone"].startswith("europe-west1-")
    assert info.geolocation == "St. Ghislain, BE"


async def test_machines_created_together_all_get_the_cheapest_offer(
    acts: ProviderActivities,
) -> None:
    spec = MachineSpec(
        kind=MachineKind.CPU,
        image="debian-12",
        disk_gb=10,
        provider="gcp",
        machine_type="e2-micro",
        zone="us-central1-b",
    )
    infos = [await provision(acts, f"m-0000000000d{i}", spec) for i in range(3)]
    assert {i.offer_id for i in infos} == {"e2-micro@us-central1-b"}
    assert len({i.instance_id for i in infos}) == 3


async def test_a_start_waiting_for_room_in_its_zone_starts_once_there_is_room(
    gcp: GcpProvider, gce_sim: SimHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GCE does not keep trying a start its zone had no room for: the wait asks again."""
    monkeypatch.setattr(GcpProvider, "START_RETRY_SECONDS", ())
    identity = ensure_identity(tmp_path / "id_ed25519")
    acts = ProviderActivities(
        ProviderRegistry({"gcp": gcp}), identity, poll_seconds=0.1, start_again_seconds=0.3
    )
    spec = MachineSpec(
        kind=MachineKind.CPU,
        image="debian-12",
        disk_gb=10,
        provider="gcp",
        machine_type="e2-micro",
        zone="us-central1-c",
    )
    info = await provision(acts, "m-0000000000e1", spec)
    env = ActivityEnvironment()
    await env.run(acts.stop_instance, InstanceActionInput(instance=info))
    await gce_sim.gce_admin.stockout("us-central1-c")
    started = await env.run(acts.start_instance, InstanceActionInput(instance=info))
    assert started.status is InstanceStatus.WAITING_FOR_HOST

    async def room_later() -> None:
        await asyncio.sleep(1.0)
        await gce_sim.gce_admin.clear_stockout("us-central1-c")

    freed = asyncio.create_task(room_later())
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    ready = await env.run(acts.wait_until_ready, WaitReadyInput(instance=info, deadline=deadline))
    await freed
    assert ready.ready and ready.instance.ssh_host
