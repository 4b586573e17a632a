"""Snapshots while the database is out: a hibernate must still be able to commit (so that the
instance can be destroyed and stop billing), with the store as the only book; the database takes
the snapshot in once it is back, and nothing of it is lost or collected meanwhile."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from core.db import make_engine, session_scope
from core.models import Snapshot, SnapshotPackRef
from core.snapshots.commit_records import commit_key, import_commits
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.retention import expire_and_collect
from tests.fixtures.s3 import S3Endpoint
from tests.snapshots.helpers import Harness, describe_tree, write_random_tree
from tests.snapshots.test_snapshots import object_keys


@pytest.fixture
def database_out() -> Iterator[Engine]:
    """A database nobody answers at (a refused connection, as when PostgreSQL is down)."""
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/dumont?connect_timeout=2")
    yield engine
    engine.dispose()


async def test_a_snapshot_commits_to_the_store_while_the_database_is_out_and_is_indexed_after(
    harness: Harness, database_out: Engine, s3: S3Endpoint, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=21, files=40, big_mib=6)
    out = dataclasses.replace(harness, db=database_out)

    made = await out.snapshot(workspace, "d-1")
    assert made.files > 0 and made.uploaded_bytes > 0
    assert object_keys(s3, "commits/") == {commit_key("alice", "d-1")}
    with session_scope(harness.db) as session:
        assert session.get(Snapshot, "d-1") is None  # the database never heard of it yet
    # Committed all the same: it restores, with the database out and with it back.
    await out.assert_restores("d-1", tmp_path / "out-1", made, workspace)
    await harness.assert_restores("d-1", tmp_path / "out-2", made, workspace)
    # A retried activity finds the commit and uploads nothing again.
    assert (await out.snapshot(workspace, "d-1")).root_hash == made.root_hash

    # Back: collected packs are only those the database knows, so nothing goes before it is in.
    policy = SnapshotPolicy(keep_last=5, gc_grace_seconds=0, pack_mib=4)
    packs_before = object_keys(s3, "packs/alice/")
    report = expire_and_collect(harness.db, harness.store, policy, datetime.now(UTC))
    assert report.deleted_packs == 0 and object_keys(s3, "packs/alice/") == packs_before
    assert object_keys(s3, "commits/") == set()
    with session_scope(harness.db) as session:
        row = session.get(Snapshot, "d-1")
        assert row is not None and row.status == "committed"
        assert (row.root_hash, row.files) == (made.root_hash, made.files)
        refs = session.execute(select(SnapshotPackRef).where(SnapshotPackRef.snapshot_id == "d-1"))
        assert len(list(refs)) == row.packs == made.packs
    assert import_commits(harness.db, harness.store) == 0  # once only

    # The chunks are indexed: the same workspace, snapshotted again, uploads nothing.
    again = await harness.snapshot(workspace, "d-2")
    assert again.uploaded_bytes == 0 and again.root_hash == made.root_hash
    await harness.assert_restores("d-2", tmp_path / "out-3", again, workspace)
    assert describe_tree(tmp_path / "out-3") == describe_tree(workspace)
