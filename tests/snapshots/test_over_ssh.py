"""The snapshot activities against real machines: sim sandboxes reached over real SSH, the engine
uploaded to them and run by their own `python3`, a real S3 endpoint and a real database."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from sqlalchemy.engine import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.snapshots import SnapshotActivities
from core.contracts.snapshots import RestoreRequest, SnapshotRequest
from core.contracts.states import InstanceStatus
from core.db import make_engine, migrate, session_scope
from core.models import Snapshot, User
from core.snapshots.policy import SnapshotPolicy
from core.ssh import SshIdentity
from providers.base import CreateRequest, OfferQuery
from providers.retry import RetryPolicy
from providers.vast import VastProvider
from tests.fixtures.s3 import S3Endpoint, running_s3
from tests.fixtures.sim import SimHandle, running_sim
from tests.snapshots.helpers import describe_tree, write_random_tree


@dataclass
class Machine:
    instance_id: str
    host: str
    port: int
    workspace_path: Path  # on this host
    visible_workspace: str  # as commands on the machine see it


@dataclass
class Cloud:
    sim: SimHandle
    s3: S3Endpoint
    db: Engine
    identity: SshIdentity
    machines: list[Machine]

    def activities(self, s3: S3Endpoint | None = None) -> SnapshotActivities:
        store = (s3 or self.s3).store()
        return SnapshotActivities(self.db, store, self.identity, SnapshotPolicy(pack_mib=8))


@pytest.fixture(scope="module")
def module_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    with running_s3(tmp_path_factory.mktemp("s3")) as handle:
        yield handle


@pytest.fixture(scope="module")
async def cloud(
    tmp_path_factory: pytest.TempPathFactory, module_s3: S3Endpoint
) -> AsyncIterator[Cloud]:
    root = tmp_path_factory.mktemp("cloud")
    db = make_engine(f"sqlite:///{root / 'dumont.db'}")
    migrate(db)
    with session_scope(db) as session:
        session.add(User(id="alice", name="alice"))
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = root / "id_ed25519"
    key.write_private_key(str(key_path))
    identity = SshIdentity(key_path, key.export_public_key().decode().strip())
    async with running_sim(root / "sim") as sim:
        vast = VastProvider(sim.url, sim.api_key, retry=RetryPolicy(max_retries=3))
        await vast.ensure_account_ssh_key(identity.public_key)
        machines = []
        for number, offer in enumerate(await vast.search_offers(OfferQuery(limit=2))):
            created = await vast.create_instance(
                CreateRequest(offer.offer_id, "pytorch/pytorch:latest", 20, f"dumont-snap-{number}")
            )
            await sim.wait_for_status(int(created.instance_id), "running")
            instance = await vast.get_instance(created.instance_id)
            assert instance is not None and instance.status is InstanceStatus.RUNNING
            assert instance.ssh_host and instance.ssh_port
            paths = await sim.admin.instance(int(created.instance_id))
            machines.append(
                Machine(
                    created.instance_id,
                    instance.ssh_host,
                    instance.ssh_port,
                    Path(paths["workspace_path"]),
                    paths["visible_workspace"],
                )
            )
        await vast.aclose()
        yield Cloud(sim, module_s3, db, identity, machines)
    db.dispose()


def snapshot_request(machine: Machine, snapshot_id: str) -> SnapshotRequest:
    return SnapshotRequest(
        snapshot_id=snapshot_id,
        owner_id="alice",
        machine_id=f"vast_{machine.instance_id}",
        ssh_host=machine.host,
        ssh_port=machine.port,
        workspace=machine.visible_workspace,
    )


def restore_request(machine: Machine, snapshot_id: str) -> RestoreRequest:
    return RestoreRequest(
        snapshot_id=snapshot_id,
        owner_id="alice",
        ssh_host=machine.host,
        ssh_port=machine.port,
        workspace=machine.visible_workspace,
    )


def clear(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


async def test_a_workspace_round_trips_between_machines_exactly(cloud: Cloud) -> None:
    source, target = cloud.machines
    clear(source.workspace_path)
    write_random_tree(source.workspace_path, seed=7, files=300, big_mib=240)
    # Whatever the new machine had in its workspace is replaced by the snapshot's tree.
    (target.workspace_path / "stale.txt").write_text("from the image")
    env = ActivityEnvironment()
    heartbeats: list[Any] = []
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    activities = cloud.activities()

    made = await env.run(activities.snapshot_workspace, snapshot_request(source, "ssh-rt-1"))
    assert made.files == 305
    assert made.logical_bytes > 240 * 1024 * 1024
    # The big file's zero blocks and the text compress; the random data is stored as is.
    assert 0 < made.uploaded_bytes < made.logical_bytes
    assert any(detail and detail[0]["phase"] == "uploading" for detail in heartbeats)

    restored = await env.run(activities.restore_workspace, restore_request(target, "ssh-rt-1"))
    assert restored.root_hash == made.root_hash
    assert describe_tree(target.workspace_path) == describe_tree(source.workspace_path)


async def test_a_snapshot_of_an_unchanged_workspace_uploads_nothing_over_ssh(cloud: Cloud) -> None:
    source = cloud.machines[0]
    clear(source.workspace_path)
    write_random_tree(source.workspace_path, seed=8, files=50)
    activities = cloud.activities()
    env = ActivityEnvironment()
    first = await env.run(activities.snapshot_workspace, snapshot_request(source, "ssh-u-1"))
    again = await env.run(activities.snapshot_workspace, snapshot_request(source, "ssh-u-2"))
    assert first.uploaded_bytes > 0
    assert again.uploaded_bytes == 0
    assert again.root_hash == first.root_hash
    # A retried activity of a committed snapshot returns it without running anything again.
    retried = await env.run(activities.snapshot_workspace, snapshot_request(source, "ssh-u-2"))
    assert retried.root_hash == first.root_hash


async def test_store_unreachable_fails_the_activity_and_commits_nothing(
    cloud: Cloud, tmp_path: Path
) -> None:
    source = cloud.machines[0]
    clear(source.workspace_path)
    write_random_tree(source.workspace_path, seed=9, files=40, big_mib=20)
    with running_s3(tmp_path / "s3-down") as doomed:
        activities = cloud.activities(doomed)
        doomed.stop()
        with pytest.raises(ApplicationError) as failure:
            await ActivityEnvironment().run(
                activities.snapshot_workspace, snapshot_request(source, "ssh-down-1")
            )
    assert failure.value.type == "SnapshotFailed"
    assert "not committed" in str(failure.value)
    assert doomed.endpoint.removeprefix("http://") in str(failure.value)
    with session_scope(cloud.db) as session:
        row = session.get(Snapshot, "ssh-down-1")
        assert row is not None and row.status == "pending" and row.root_hash is None
        assert row.error and doomed.endpoint.removeprefix("http://") in row.error


async def test_restoring_an_unknown_snapshot_fails_without_retry(cloud: Cloud) -> None:
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            cloud.activities().restore_workspace, restore_request(cloud.machines[1], "nope")
        )
    assert failure.value.non_retryable
    assert "not found" in str(failure.value)
