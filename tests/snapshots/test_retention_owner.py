"""Per-owner retention: an owner's own keep_last / deleted_retention_days decide which of their
snapshots expire; owners who set nothing keep the defaults. Real snapshots (the engine as a
subprocess), a real S3 endpoint and database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.db import session_scope
from core.models import Machine, Snapshot
from core.snapshots.owner_retention import (
    OwnerRetention,
    RetentionChange,
    effective_retention,
    reset_retention,
    update_retention,
)
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.retention import expire_and_collect
from tests.fixtures.s3 import S3Endpoint
from tests.snapshots.helpers import Harness, describe_tree

# The defaults (keep 3, deleted machines' snapshots kept until deleted); GC without grace so
# expired snapshots' packs leave the store in the same pass.
POLICY = SnapshotPolicy(gc_grace_seconds=0, pack_mib=4)


async def take(harness: Harness, root: Path, snapshot_id: str, owner: str, machine: str) -> Path:
    """A snapshot of a workspace whose content is new each time: each has packs of its own."""
    workspace = root / owner / machine
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "data.bin").write_bytes(random.Random(snapshot_id).randbytes(64 * 1024))
    await harness.snapshot(workspace, snapshot_id, owner=owner, machine=machine)
    return workspace


def statuses(db: Engine) -> dict[str, str]:
    with session_scope(db) as session:
        return {row.id: row.status for row in session.execute(select(Snapshot)).scalars()}


def pack_keys(s3: S3Endpoint, owner: str) -> set[str]:
    listed = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=f"packs/{owner}/")
    return {item["Key"] for item in listed.get("Contents", [])}


def set_retention(db: Engine, owner: str, **values: int | None) -> OwnerRetention:
    change = RetentionChange(
        keep_last=values.get("keep_last"),
        deleted_retention_days=values.get("deleted_retention_days"),
        given=frozenset(values),
    )
    with session_scope(db) as session:
        return update_retention(session, POLICY, owner, change)


def mark_deleted(db: Engine, owner: str, machine: str, days_ago: int) -> None:
    with session_scope(db) as session:
        session.add(
            Machine(
                id=machine,
                owner_id=owner,
                gpu_name="RTX 4090",
                image="img",
                disk_gb=10,
                status="deleted",
                updated_at=datetime.now(UTC) - timedelta(days=days_ago),
            )
        )


async def test_an_owners_keep_last_expires_only_their_own_older_snapshots(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    harness.policy = POLICY
    set_retention(harness.db, "alice", keep_last=1)
    for number in (1, 2):
        await take(harness, tmp_path, f"a-{number}", "alice", "m-alice")
    for number in (1, 2, 3, 4):
        bob_workspace = await take(harness, tmp_path, f"b-{number}", "bob", "m-bob")
    alice_before, bob_before = pack_keys(s3, "alice"), pack_keys(s3, "bob")

    # The fleet monitor's pass for alice touches only alice's snapshots...
    report = expire_and_collect(harness.db, harness.store, POLICY, datetime.now(UTC), "alice")
    assert report.expired_snapshots == 1 and report.deleted_packs > 0
    assert pack_keys(s3, "alice") < alice_before and pack_keys(s3, "bob") == bob_before
    # ...and a pass over everyone applies each owner's own retention: bob keeps the default 3.
    report = expire_and_collect(harness.db, harness.store, POLICY, datetime.now(UTC))
    assert report.expired_snapshots == 1
    assert statuses(harness.db) == {
        "a-1": "expired",
        "a-2": "committed",
        "b-1": "expired",
        "b-2": "committed",
        "b-3": "committed",
        "b-4": "committed",
    }
    assert pack_keys(s3, "bob") < bob_before

    # What bob kept still restores (b-4 is what his workspace holds now).
    await harness.restore("b-4", tmp_path / "out", owner="bob")
    assert describe_tree(tmp_path / "out") == describe_tree(bob_workspace)


async def test_an_owners_deleted_retention_overrides_the_default(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    harness.policy = POLICY
    await take(harness, tmp_path, "gone-a", "alice", "m-gone-a")
    await take(harness, tmp_path, "gone-b", "bob", "m-gone-b")
    mark_deleted(harness.db, "alice", "m-gone-a", days_ago=10)
    mark_deleted(harness.db, "bob", "m-gone-b", days_ago=10)

    # Alice keeps a deleted machine's snapshots 30 days: nothing goes yet.
    set_retention(harness.db, "alice", deleted_retention_days=30)
    report = expire_and_collect(harness.db, harness.store, POLICY, datetime.now(UTC))
    assert report.expired_snapshots == 0
    assert statuses(harness.db) == {"gone-a": "committed", "gone-b": "committed"}

    # 7 days: hers go; bob, on the default (0: until he deletes them), keeps his.
    set_retention(harness.db, "alice", deleted_retention_days=7)
    report = expire_and_collect(harness.db, harness.store, POLICY, datetime.now(UTC))
    assert report.expired_snapshots == 1 and report.deleted_packs > 0
    assert statuses(harness.db) == {"gone-a": "expired", "gone-b": "committed"}
    assert pack_keys(s3, "alice") == set() and pack_keys(s3, "bob") != set()


async def test_a_reset_owner_is_back_on_the_defaults(harness: Harness, tmp_path: Path) -> None:
    harness.policy = POLICY
    mine = set_retention(harness.db, "alice", keep_last=1, deleted_retention_days=5)
    assert (mine.keep_last, mine.deleted_retention_days, mine.customized) == (1, 5, True)
    # null for one field: that one follows the default again, the other stays.
    partly = set_retention(harness.db, "alice", keep_last=None)
    assert (partly.keep_last, partly.deleted_retention_days, partly.customized) == (3, 5, True)
    with session_scope(harness.db) as session:
        back = reset_retention(session, POLICY, "alice")
    assert (back.keep_last, back.deleted_retention_days, back.customized) == (3, 0, False)
    with session_scope(harness.db) as session:
        assert effective_retention(session, POLICY, "alice") == back

    for number in (1, 2, 3):
        await take(harness, tmp_path, f"r-{number}", "alice", "m-alice")
    report = expire_and_collect(harness.db, harness.store, POLICY, datetime.now(UTC))
    assert report.expired_snapshots == 0
    assert set(statuses(harness.db).values()) == {"committed"}
