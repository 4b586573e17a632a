"""The GCP provider, unchanged, against the sim's Compute Engine: the life of a VM, SSH as
the metadata user, idempotent creates, stockouts, quota, storms and preemption."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from core.contracts.states import InstanceStatus
from providers.base import RateLimited
from providers.gcp import GcpProvider
from providers.gcp.errors import QuotaExceeded, ZoneExhausted
from providers.gcp.naming import instance_name
from tests.fixtures.sim import SimHandle, running_sim
from tests.providers.gcp_helpers import create_request, gcp_provider, ssh_run

_projects = itertools.count(1)


@pytest.fixture(scope="module")
async def gce_sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    data_dir: Path = tmp_path_factory.mktemp("gcp") / "sim"
    async with running_sim(data_dir, boot_delay=0.2) as handle:
        yield handle


@pytest.fixture
async def gcp(gce_sim: SimHandle) -> AsyncIterator[GcpProvider]:
    """A provider on a project of its own (tests share the sim, not instances)."""
    provider = gcp_provider(gce_sim, project=f"proj-{next(_projects)}")
    yield provider
    await provider.aclose()
    await gce_sim.gce_admin.clear_faults()
    for zone in ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"):
        await gce_sim.gce_admin.clear_stockout(zone)


@pytest.fixture(scope="module")
def key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def public(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


async def test_a_vm_lives_runs_ssh_as_its_metadata_user_stops_starts_and_goes(
    gcp: GcpProvider, key: asyncssh.SSHKey
) -> None:
    label = "dumont-m-00000000a001-1"
    created = await gcp.create_instance(create_request(label, public(key)))
    assert created.status is InstanceStatus.RUNNING
    assert (created.label, created.ssh_user, created.num_gpus) == (label, "dumont", 0)
    assert created.instance_id == f"us-central1-a/{instance_name(label, 'itest0001')}"
    assert created.price_per_hour > 0 and created.disk_price_per_hour
    assert created.ssh_host and created.ssh_host.startswith("127.")
    assert created.ssh_port is not None
    said = await ssh_run(
        created.ssh_host,
        created.ssh_port,
        "dumont",
        key,
        'echo "$USER $HOME"; sudo -n true && echo sudo; touch /workspace/x && echo ws',
    )
    user, home, *rest = said.split()
    assert (user, rest) == ("dumont", ["sudo", "ws"])
    assert home.endswith("/home/dumont")

    await gcp.stop_instance(created.instance_id)
    stopped = await gcp.get_instance(created.instance_id)
    assert stopped is not None and stopped.status is InstanceStatus.STOPPED
    assert (stopped.ssh_host, stopped.interrupted) == (None, False)

    await gcp.start_instance(created.instance_id)
    started = await gcp.get_instance(created.instance_id)
    assert started is not None and started.status is InstanceStatus.RUNNING
    assert started.ssh_host and started.ssh_port
    assert "ws" in await ssh_run(
        started.ssh_host, started.ssh_port, "dumont", key, "ls /workspace && echo ws"
    )

    await gcp.destroy_instance(created.instance_id)
    assert await gcp.get_instance(created.instance_id) is None
    await gcp.destroy_instance(created.instance_id)  # gone already: done
    assert await gcp.find_by_exact_label(label) == []


async def test_root_cannot_log_in(gcp: GcpProvider, key: asyncssh.SSHKey) -> None:
    created = await gcp.create_instance(create_request("dumont-m-00000000a002-1", public(key)))
    assert created.ssh_host and created.ssh_port
    with pytest.raises(asyncssh.PermissionDenied):
        await ssh_run(created.ssh_host, created.ssh_port, "root", key, "true")


async def test_a_key_attached_to_a_running_vm_works_at_once(
    gcp: GcpProvider, key: asyncssh.SSHKey
) -> None:
    created = await gcp.create_instance(create_request("dumont-m-00000000a003-1", public(key)))
    assert created.ssh_host and created.ssh_port
    other = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await ssh_run(created.ssh_host, created.ssh_port, "dumont", other, "true")
    await gcp.attach_ssh_key(created.instance_id, public(other) + " someone@laptop")
    await gcp.attach_ssh_key(created.instance_id, public(other))  # already there: no change
    assert "ok" in await ssh_run(created.ssh_host, created.ssh_port, "dumont", other, "echo ok")
    # Dumont's own key still works: the metadata was added to, not replaced.
    assert "ok" in await ssh_run(created.ssh_host, created.ssh_port, "dumont", key, "echo ok")


async def test_a_create_tried_again_adopts_what_the_first_try_made(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey
) -> None:
    label = "dumont-m-00000000a004-1"
    request = create_request(label, public(key))
    first = await gcp.create_instance(request)
    again = await gcp.create_instance(request)
    assert again.instance_id == first.instance_id
    # The answer of an insert lost: the same requestId again gets the first one's operation.
    name = instance_name(label, "itest0001")
    replayed = await gcp._insert(request, name, "us-central1-a")
    assert replayed.instance_id == first.instance_id
    ours = [i for i in await gce_sim.gce_admin.instances() if i["name"] == name]
    assert len(ours) == 1


async def test_an_instance_made_without_its_answer_is_adopted_by_name(
    gcp: GcpProvider, key: asyncssh.SSHKey
) -> None:
    """Past GCE's requestId memory, an insert of the same name answers 409: adopt it."""
    label = "dumont-m-00000000a005-1"
    request = create_request(label, public(key))
    name = instance_name(label, "itest0001")
    first = await gcp._insert(request, name, "us-central1-a")
    # A fresh requestId (as after a failed try): the sim answers 409, the provider adopts.
    gcp._failed_inserts[(name, "us-central1-a")] = 1
    adopted = await gcp._insert(request, name, "us-central1-a")
    assert adopted.instance_id == first.instance_id


async def test_a_stockout_moves_to_the_next_zone_of_the_region(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey
) -> None:
    await gce_sim.gce_admin.stockout("us-central1-a")
    created = await gcp.create_instance(create_request("dumont-m-00000000a006-1", public(key)))
    zone = created.instance_id.split("/")[0]
    assert zone.startswith("us-central1-") and zone != "us-central1-a"
    assert created.status is InstanceStatus.RUNNING


async def test_a_region_out_of_capacity_raises_zone_exhausted(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey
) -> None:
    for zone in ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"):
        await gce_sim.gce_admin.stockout(zone)
    with pytest.raises(ZoneExhausted, match="ZONE_RESOURCE_POOL_EXHAUSTED"):
        await gcp.create_instance(create_request("dumont-m-00000000a007-1", public(key)))
    assert await gcp.find_by_exact_label("dumont-m-00000000a007-1") == []


async def test_a_chosen_zone_out_of_capacity_is_not_left(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey
) -> None:
    await gce_sim.gce_admin.stockout("us-central1-a", 1)
    request = create_request("dumont-m-00000000a008-1", public(key), pinned=True)
    with pytest.raises(ZoneExhausted):
        await gcp.create_instance(request)
    assert await gcp.find_by_exact_label("dumont-m-00000000a008-1") == []


@pytest.mark.parametrize("mode", ["sync", "operation"])
async def test_quota_exceeded_is_a_clear_error_not_retried(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey, mode: str
) -> None:
    await gce_sim.gce_admin.quota(1, mode=mode)
    label = f"dumont-m-00000000a0{10 if mode == 'sync' else 11}-1"
    with pytest.raises(QuotaExceeded, match="CPUS") as raised:
        await gcp.create_instance(create_request(label, public(key)))
    assert raised.value.retryable is False
    # The quota spent once only: the next create goes through.
    assert (await gcp.create_instance(create_request(label, public(key)))).label == label


@pytest.mark.parametrize("kind", ["429", "403", "503"])
async def test_storms_are_retried(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey, kind: str
) -> None:
    await gce_sim.gce_admin.storm(kind, 2)
    label = f"dumont-m-00000000a02{kind[0]}-1"
    created = await gcp.create_instance(create_request(label, public(key)))
    assert created.status is InstanceStatus.RUNNING


async def test_a_storm_longer_than_the_retries_is_rate_limited(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey
) -> None:
    await gce_sim.gce_admin.storm("429", 50)
    with pytest.raises(RateLimited):
        await gcp.create_instance(create_request("dumont-m-00000000a030-1", public(key)))


async def test_a_preempted_spot_vm_is_seen_as_preempted(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey
) -> None:
    created = await gcp.create_instance(
        create_request("dumont-m-00000000a040-1", public(key), spot=True)
    )
    zone, name = created.instance_id.split("/")
    await gce_sim.gce_admin.preempt(gcp._compute.project, zone, name)
    seen = await gcp.get_instance(created.instance_id)
    assert seen is not None
    assert (seen.status, seen.interrupted, seen.ssh_host) == (InstanceStatus.STOPPED, True, None)
    assert seen.status_msg == "Instance was preempted."
    assert created.instance_id in await gcp.preemptions()
    # A stop Dumont asked for is no preemption, after a start of the same VM.
    await gcp.start_instance(created.instance_id)
    await gcp.stop_instance(created.instance_id)
    stopped = await gcp.get_instance(created.instance_id)
    assert stopped is not None and not stopped.interrupted


async def test_a_spot_vm_deleted_on_preemption_leaves_the_preempted_operation(
    gcp: GcpProvider, gce_sim: SimHandle
) -> None:
    project = gcp._compute.project
    client = compute_v1.InstancesClient(
        client_options={"api_endpoint": gce_sim.gce_url},
        credentials=AnonymousCredentials(),
        transport="rest",
    )
    instance = compute_v1.Instance(
        name="doomed",
        machine_type="zones/us-central1-b/machineTypes/e2-micro",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image="projects/debian-cloud/global/images/family/debian-12",
                    disk_size_gb=10,
                ),
            )
        ],
        network_interfaces=[compute_v1.NetworkInterface(network="global/networks/default")],
        scheduling=compute_v1.Scheduling(
            provisioning_model="SPOT", instance_termination_action="DELETE"
        ),
    )
    operation = await asyncio.to_thread(
        client.insert_unary, project=project, zone="us-central1-b", instance_resource=instance
    )
    await gcp._compute.wait(operation, "insert doomed", zone="us-central1-b")
    await gce_sim.gce_admin.preempt(project, "us-central1-b", "doomed")
    assert await gcp.get_instance("us-central1-b/doomed") is None
    assert "us-central1-b/doomed" in await gcp.preemptions()


async def test_installations_never_see_each_others_instances(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey
) -> None:
    label = "dumont-m-00000000a050-1"
    mine = await gcp.create_instance(create_request(label, public(key)))
    theirs = gcp_provider(gce_sim, project=gcp._compute.project, installation="iother002")
    try:
        assert await theirs.find_by_exact_label(label) == []
        assert await theirs.find_by_label("dumont-") == []
        made = await theirs.create_instance(create_request(label, public(key)))
        assert made.instance_id != mine.instance_id
        assert [i.instance_id for i in await gcp.find_by_label("dumont-m-00000000a050-")] == [
            mine.instance_id
        ]
    finally:
        await theirs.aclose()


async def test_a_start_in_a_zone_out_of_capacity_waits_for_the_host(
    gcp: GcpProvider, gce_sim: SimHandle, key: asyncssh.SSHKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GcpProvider, "START_RETRY_SECONDS", (0.05,))
    created = await gcp.create_instance(create_request("dumont-m-00000000a060-1", public(key)))
    await gcp.stop_instance(created.instance_id)
    await gce_sim.gce_admin.stockout("us-central1-a")
    await gcp.start_instance(created.instance_id)  # tried twice, then left stopped
    seen = await gcp.get_instance(created.instance_id)
    assert seen is not None and seen.status is InstanceStatus.WAITING_FOR_HOST
    assert seen.status_msg and "no capacity" in seen.status_msg and not seen.interrupted

    await gce_sim.gce_admin.clear_stockout("us-central1-a")
    await gcp.start_instance(created.instance_id)
    back = await gcp.get_instance(created.instance_id)
    assert back is not None and back.status is InstanceStatus.RUNNING
