"""Packs go up as one-part multipart uploads that only the control plane completes: the store
takes a part of exactly the size it signed, a pack exists only once completed, and an upload a
run left open is aborted, by the run itself when it fails or by garbage collection."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.snapshot import transfer
from core.contracts.snapshots import SnapshotProgress
from core.db import session_scope
from core.models import Snapshot
from core.snapshots.channel import EngineChannel, LocalEngine
from core.snapshots.retention import expire_and_collect
from core.snapshots.session import SnapshotFailed, SnapshotRun, SnapshotTarget
from core.snapshots.store import ObjectStore, StoreError
from tests.fixtures.s3 import S3Endpoint
from tests.snapshots.helpers import Harness, MiB


def _workspace(root: Path, seed: int, files: int = 6) -> Path:
    rng = random.Random(seed)
    root.mkdir()
    for number in range(files):
        (root / f"part-{number}.bin").write_bytes(rng.randbytes(5 * MiB))
    return root


def test_a_part_url_takes_exactly_the_signed_size_and_nothing_shows_until_completed(
    store: ObjectStore,
) -> None:
    key = "packs/alice/ab/pack-1"
    upload = store.start_upload(key)
    body = random.Random(1).randbytes(4096)
    url = store.presign_part(key, upload, len(body), 600)
    for wrong in (body[:-1], body + b"!"):
        with pytest.raises(transfer.TransferError, match="HTTP 403"):
            transfer.put(url, wrong)
    etag = transfer.put(url, body)
    assert store.size(key) is None  # a part is not an object
    with pytest.raises(StoreError, match="InvalidPart"):
        store.complete_upload(key, upload, '"0123456789abcdef0123456789abcdef"', len(body))
    assert store.size(key) is None

    upload = store.start_upload(key)
    etag = transfer.put(store.presign_part(key, upload, len(body), 600), body)
    store.complete_upload(key, upload, etag, len(body))
    store.complete_upload(key, upload, etag, len(body))  # a retry after a lost answer
    assert store.get(key) == body
    assert store.open_uploads("packs/") == []


class _ForgedETags:
    """The engine's messages as sent, except that every pack it reports stored carries an ETag
    the store never gave: what a broken or lying engine would claim."""

    def __init__(self, channel: EngineChannel) -> None:
        self.channel = channel

    async def send(self, message: dict[str, Any]) -> None:
        await self.channel.send(message)

    async def receive(self) -> dict[str, Any] | None:
        message = await self.channel.receive()
        if message is not None and message["t"] == "uploaded":
            message["etag"] = '"0123456789abcdef0123456789abcdef"'
        return message

    async def finish(self) -> tuple[int | None, str]:
        return await self.channel.finish()

    async def kill(self) -> None:
        await self.channel.kill()


async def test_a_pack_the_store_does_not_hold_fails_the_snapshot_and_commits_nothing(
    harness: Harness, s3: S3Endpoint, tmp_path: Path
) -> None:
    workspace = _workspace(tmp_path / "ws", seed=11)
    run = SnapshotRun(
        harness.db, harness.store, harness.policy, SnapshotTarget("forged", "alice", "m1")
    )
    engine = await LocalEngine.start(
        "create", str(workspace), harness.engine_args("m1", []), python=harness.python
    )
    with pytest.raises(SnapshotFailed, match="completing the upload"):
        await run.run(_ForgedETags(engine))
    with session_scope(harness.db) as session:
        row = session.get(Snapshot, "forged")
        assert row is not None and row.status == "pending" and row.manifest_key is None
    assert harness.store.open_uploads("packs/") == []
    # Nothing was indexed as stored: the next attempt uploads every pack again and commits.
    done = await harness.snapshot(workspace, "forged")
    assert done.uploaded_bytes >= 6 * 5 * MiB
    await harness.assert_restores("forged", tmp_path / "out", done, workspace)


class _Stop(Exception):
    pass


async def test_a_failed_run_aborts_its_open_uploads_and_gc_aborts_a_killed_runs(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = _workspace(tmp_path / "ws", seed=12, files=10)
    start_upload = harness.store.start_upload

    def slow_answers_after_the_first(key: str) -> str:
        """The store opens every upload at once, but after the first its answers are slow: the
        run fails while uploads it has not heard of yet are open."""
        upload_id = start_upload(key)
        if len(harness.store.open_uploads("packs/")) > 1:
            time.sleep(1)
        return upload_id

    monkeypatch.setattr(harness.store, "start_upload", slow_answers_after_the_first)

    def stop_after_one(progress: SnapshotProgress) -> None:
        if progress.packs_uploaded == 1:
            raise _Stop

    with pytest.raises(_Stop):
        await harness.snapshot(
            workspace, "s-1", extra=["--uploaders", "2"], on_progress=stop_after_one
        )
    assert harness.store.open_uploads("packs/") == []
    monkeypatch.undo()

    # A worker killed mid-run aborts nothing: its uploads stay open until the grace period ends.
    left = [harness.store.start_upload(f"packs/{owner}/ab/left") for owner in ("alice", "bob")]
    assert len(harness.store.open_uploads("packs/")) == len(left)
    now = datetime.now(UTC)
    assert expire_and_collect(harness.db, harness.store, harness.policy, now).aborted_uploads == 0
    later = now + timedelta(seconds=harness.policy.gc_grace_seconds + 60)
    report = expire_and_collect(harness.db, harness.store, harness.policy, later, "alice")
    assert report.aborted_uploads == 1
    assert [u.key for u in harness.store.open_uploads("packs/")] == ["packs/bob/ab/left"]
