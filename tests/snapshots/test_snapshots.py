"""Snapshots through the real sessions, the engine as a subprocess, a real S3 endpoint and DB."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from agent.snapshot.chunker import MAX_CHUNK
from core.contracts.snapshots import SnapshotProgress
from core.db import session_scope
from core.models import Machine, Snapshot, SnapshotPack, SnapshotPackRef
from core.snapshots.cost import storage_cost
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.retention import expire_and_collect
from core.snapshots.session import RestoreFailed, SnapshotFailed
from tests.fixtures.s3 import S3Endpoint
from tests.snapshots.helpers import Harness, MiB, write_random_tree


def object_keys(s3: S3Endpoint, prefix: str) -> set[str]:
    found: set[str] = set()
    for page in s3.client.get_paginator("list_objects_v2").paginate(
        Bucket=s3.bucket, Prefix=prefix
    ):
        found.update(item["Key"] for item in page.get("Contents", []))
    return found


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


@pytest.mark.parametrize("codec", ["zstandard", "zstd-cli", "zlib"])
async def test_round_trip_with_every_codec(harness: Harness, tmp_path: Path, codec: str) -> None:
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=1, files=60, big_mib=12)
    made = await harness.snapshot(workspace, f"rt-{codec}", extra=["--codec", codec])
    await harness.assert_restores(f"rt-{codec}", tmp_path / "out", made, workspace)


async def test_a_one_percent_change_uploads_about_one_percent(
    harness: Harness, tmp_path: Path
) -> None:
    rng = random.Random(3)
    workspace = tmp_path / "ws"
    (workspace / "small").mkdir(parents=True)
    for number in range(1000):
        (workspace / "small" / f"{number}.txt").write_bytes(rng.randbytes(rng.randrange(1, 40_000)))
    for number in range(6):
        (workspace / f"model-{number}.bin").write_bytes(rng.randbytes(32 * MiB))
    first = await harness.snapshot(workspace, "inc-1")

    # 1 %: ten small files rewritten, bytes inserted into and overwritten in two big files.
    changed = 0
    for number in range(0, 1000, 100):
        data = rng.randbytes(20_000)
        (workspace / "small" / f"{number}.txt").write_bytes(data)
        changed += len(data)
    overwrite(workspace / "model-1.bin", 10 * MiB, rng.randbytes(MiB))
    original = (workspace / "model-4.bin").read_bytes()
    (workspace / "model-4.bin").write_bytes(original[: 7 * MiB] + b"inserted" + original[7 * MiB :])
    changed += MiB + 8
    assert changed < 0.01 * first.logical_bytes

    second = await harness.snapshot(workspace, "inc-2")
    assert second.root_hash != first.root_hash
    # What changed plus the chunks around the edits: the cuts after an insert come back.
    assert second.uploaded_bytes <= 0.015 * second.logical_bytes + MAX_CHUNK
    assert second.uploaded_bytes >= changed

    third = await harness.snapshot(workspace, "inc-3")
    assert third.uploaded_bytes == 0
    await harness.assert_restores("inc-2", tmp_path / "out", second, workspace)


async def test_dedup_spans_an_owners_machines_but_never_two_owners(
    harness: Harness, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=4, files=80, big_mib=8)
    copy = tmp_path / "copy"
    shutil.copytree(workspace, copy, symlinks=True)
    first = await harness.snapshot(workspace, "d-1", machine="m1")
    same_owner = await harness.snapshot(copy, "d-2", machine="m2")
    other_owner = await harness.snapshot(copy, "d-3", owner="bob", machine="m3")
    assert first.uploaded_bytes > 0
    assert same_owner.uploaded_bytes == 0
    assert other_owner.uploaded_bytes == first.uploaded_bytes
    # Bob's snapshot references only Bob's packs, and restores from them alone.
    with session_scope(harness.db) as session:
        owners = set(
            session.execute(
                select(col(SnapshotPack.owner_id))
                .join(SnapshotPackRef, col(SnapshotPackRef.pack_id) == col(SnapshotPack.id))
                .where(col(SnapshotPackRef.snapshot_id) == "d-3")
            ).scalars()
        )
    assert owners == {"bob"}
    restored = await harness.restore("d-3", tmp_path / "out", owner="bob")
    assert restored.root_hash == first.root_hash
    with pytest.raises(RestoreFailed, match="not found"):
        await harness.restore("d-1", tmp_path / "out-bob", owner="bob")


async def test_a_corrupt_pack_fails_the_restore_and_leaves_the_target_alone(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=5, files=40, big_mib=6)
    await harness.snapshot(workspace, "c-1")
    key = sorted(object_keys(s3, "packs/alice/"))[0]
    body = bytearray(s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    for offset in range(100, len(body), 4096):
        body[offset] ^= 0xFF  # same size: only the content betrays it
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(body))

    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("the user's file")
    with pytest.raises(RestoreFailed, match="hash mismatch|corrupt"):
        await harness.restore("c-1", target)
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "the user's file"


class StopAfter(Exception):
    pass


async def test_a_killed_snapshot_resumes_without_uploading_again(
    harness: Harness, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    rng = random.Random(6)
    workspace.mkdir()
    for number in range(12):
        (workspace / f"part-{number}.bin").write_bytes(rng.randbytes(5 * MiB))
    reference = await harness.snapshot(workspace, "r-ref", owner="bob")
    slow = ["--uploaders", "2"]

    def stop_after_six(progress: SnapshotProgress) -> None:
        if progress.packs_uploaded == 6:
            raise StopAfter

    with pytest.raises(StopAfter):
        await harness.snapshot(workspace, "r-1", extra=slow, on_progress=stop_after_six)
    with session_scope(harness.db) as session:
        row = session.get(Snapshot, "r-1")
        assert row is not None and row.status == "pending"
        packs = list(
            session.execute(
                select(SnapshotPack).where(col(SnapshotPack.snapshot_id) == "r-1")
            ).scalars()
        )
    confirmed = sum(p.size for p in packs if p.state == "uploaded")
    assert confirmed >= 6 * 4 * MiB

    second: list[SnapshotProgress] = []
    done = await harness.snapshot(workspace, "r-1", extra=slow, on_progress=second.append)
    again = max(p.bytes_uploaded for p in second)
    assert done.root_hash == reference.root_hash
    # Exactly what was not confirmed goes up again (packs the kill cut short included).
    assert again <= reference.uploaded_bytes - confirmed + MiB
    restored = await harness.restore("r-1", tmp_path / "out")
    assert restored.root_hash == reference.root_hash


async def test_the_store_going_away_mid_snapshot_commits_nothing(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    rng = random.Random(7)
    workspace.mkdir()
    for number in range(6):
        (workspace / f"part-{number}.bin").write_bytes(rng.randbytes(6 * MiB))

    def stop_store(progress: SnapshotProgress) -> None:
        if progress.packs_uploaded == 1:
            s3.stop()

    with pytest.raises(SnapshotFailed) as failure:
        await harness.snapshot(workspace, "gone-1", on_progress=stop_store)
    assert s3.endpoint.removeprefix("http://") in str(failure.value)
    with session_scope(harness.db) as session:
        row = session.get(Snapshot, "gone-1")
        assert row is not None and row.status == "pending" and row.manifest_key is None


async def test_retention_and_gc_remove_only_what_no_snapshot_needs(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    policy = SnapshotPolicy(keep_last=1, gc_grace_seconds=0, pack_mib=4)
    harness.policy = policy
    old, new = tmp_path / "old", tmp_path / "new"
    write_random_tree(old, seed=10, files=30, big_mib=8)
    write_random_tree(new, seed=11, files=30, big_mib=8)
    await harness.snapshot(old, "g-1")
    await asyncio.sleep(0.01)
    kept = await harness.snapshot(new, "g-2")
    before = object_keys(s3, "packs/alice/")
    cost_before = storage_cost(harness.db, policy, "alice")
    assert cost_before.stored_bytes == sum(
        s3.client.head_object(Bucket=s3.bucket, Key=k)["ContentLength"] for k in before
    )
    assert cost_before.monthly_cost == pytest.approx(
        cost_before.stored_bytes / 1e9 * policy.price_per_gb_month
    )

    report = expire_and_collect(harness.db, harness.store, policy, datetime.now(UTC))
    after = object_keys(s3, "packs/alice/")
    assert report.expired_snapshots == 1
    assert 0 < report.deleted_packs == len(before - after)
    assert after < before
    with session_scope(harness.db) as session:
        rows = {s.id: s for s in session.execute(select(Snapshot)).scalars()}
        statuses = {id: row.status for id, row in rows.items()}
        assert object_keys(s3, "manifests/alice/") == {rows["g-2"].manifest_key}
    assert statuses == {"g-1": "expired", "g-2": "committed"}
    assert storage_cost(harness.db, policy, "alice").stored_bytes < cost_before.stored_bytes

    await harness.assert_restores("g-2", tmp_path / "out", kept, new)


async def test_an_unchanged_workspace_stores_nothing_new_not_even_a_manifest(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=15, files=40)
    await harness.snapshot(workspace, "u-1")
    stored = object_keys(s3, "")
    again = await harness.snapshot(workspace, "u-2")
    assert again.uploaded_bytes == 0
    assert object_keys(s3, "") == stored
    # The shared manifest outlives the snapshot that wrote it.
    harness.policy = SnapshotPolicy(keep_last=1, gc_grace_seconds=0, pack_mib=4)
    report = expire_and_collect(harness.db, harness.store, harness.policy, datetime.now(UTC))
    assert report.expired_snapshots == 1
    assert object_keys(s3, "") == stored
    await harness.assert_restores("u-2", tmp_path / "out", again, workspace)


async def test_a_few_new_chunks_among_many_known_ones_do_not_stall_a_small_engine(
    harness: Harness, tmp_path: Path
) -> None:
    """Another machine of the owner has nearly everything: each region of the engine's arena
    then holds a needed chunk or two, too few to fill a pack, and it must still go on."""
    workspace = tmp_path / "ws"
    rng = random.Random(16)
    for number in range(3000):
        folder = workspace / f"d{number % 30}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{number}.bin").write_bytes(rng.randbytes(2000))
    await harness.snapshot(workspace, "k-1", machine="m1")
    copy = tmp_path / "copy"
    shutil.copytree(workspace, copy, symlinks=True)
    for number in range(0, 3000, 61):  # some in every folder
        (copy / f"d{number % 30}" / f"f{number}.bin").write_bytes(b"changed %d" % number)
    small = ["--window-mib", "8"]  # the fewest regions the engine takes
    second = await harness.snapshot(copy, "k-2", machine="m2", extra=small)
    assert 0 < second.uploaded_bytes < 64 * 1024
    await harness.assert_restores("k-2", tmp_path / "out", second, copy)


async def test_a_deleted_machines_snapshots_go_after_their_retention(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=12, files=10)
    await harness.snapshot(workspace, "del-1", machine="gone")
    with session_scope(harness.db) as session:
        session.add(
            Machine(
                id="gone",
                owner_id="alice",
                gpu_name="RTX 4090",
                image="img",
                disk_gb=10,
                status="deleted",
                updated_at=datetime.now(UTC) - timedelta(days=10),
            )
        )
    keep = SnapshotPolicy(keep_last=1, deleted_retention_days=30, gc_grace_seconds=0)
    assert expire_and_collect(harness.db, harness.store, keep, datetime.now(UTC)).deleted_packs == 0
    drop = SnapshotPolicy(keep_last=1, deleted_retention_days=7, gc_grace_seconds=0)
    report = expire_and_collect(harness.db, harness.store, drop, datetime.now(UTC))
    assert report.expired_snapshots == 1 and report.deleted_packs > 0
    assert object_keys(s3, "packs/alice/") == set()


async def test_packs_of_a_recent_unfinished_snapshot_survive_gc(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    rng = random.Random(13)
    workspace.mkdir()
    for number in range(4):
        (workspace / f"part-{number}.bin").write_bytes(rng.randbytes(5 * MiB))

    def stop(progress: SnapshotProgress) -> None:
        if progress.packs_uploaded == 2:
            raise StopAfter

    with pytest.raises(StopAfter):
        await harness.snapshot(workspace, "p-1", on_progress=stop)
    stored = object_keys(s3, "packs/alice/")
    assert stored
    report = expire_and_collect(harness.db, harness.store, SnapshotPolicy(), datetime.now(UTC))
    # Nothing deleted (a PUT the engine had in flight when it was killed may still land).
    assert report.deleted_packs == 0 and stored <= object_keys(s3, "packs/alice/")
    later = datetime.now(UTC) + timedelta(days=2)
    report = expire_and_collect(harness.db, harness.store, SnapshotPolicy(), later)
    # Every pack goes, also one whose upload the kill cut short (registered, never stored).
    assert report.deleted_packs >= len(stored) and object_keys(s3, "packs/alice/") == set()
    with session_scope(harness.db) as session:
        row = session.get(Snapshot, "p-1")
        assert row is not None and row.status == "failed"


async def test_files_that_change_between_snapshots_are_read_again(
    harness: Harness, tmp_path: Path
) -> None:
    """The stat cache skips unchanged files; a rewrite with the old size and mtime is still seen."""
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=14, files=20)
    first = await harness.snapshot(workspace, "sc-1")
    path = workspace / "secret.txt"
    st = path.stat()
    path.write_bytes(b"TOKEN")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    second = await harness.snapshot(workspace, "sc-2")
    assert second.root_hash != first.root_hash
    await harness.restore("sc-2", tmp_path / "out")
    assert (tmp_path / "out" / "secret.txt").read_bytes() == b"TOKEN"
