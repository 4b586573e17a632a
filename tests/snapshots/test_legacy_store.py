"""Every snapshot taken before a format change still restores: stored snapshots of each earlier
manifest format (tests/snapshots/legacy/store-*.tar.gz, made by that format's own code with
`python -m tests.snapshots.legacy.record`) are restored by today's code, every byte, mode,
owner and nanosecond time as that format's restore gave them."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.db import session_scope
from core.models import Snapshot
from tests.fixtures.s3 import S3Endpoint
from tests.snapshots import awkward
from tests.snapshots.helpers import Harness

LEGACY = Path(__file__).resolve().parent / "legacy"
FORMATS = sorted(path.name.removeprefix("store-").split(".")[0] for path in LEGACY.glob("store-*"))


def load_store(tag: str, s3: S3Endpoint, harness: Harness) -> dict[str, Any]:
    """Put the fixture's objects in the store and its snapshot in the index; its meta."""
    with tarfile.open(LEGACY / f"store-{tag}.tar.gz") as archive:
        meta: dict[str, Any] = {}
        for member in archive.getmembers():
            handle = archive.extractfile(member)
            assert handle is not None
            body = handle.read()
            if member.name == "meta.json":
                meta = json.loads(body)
            else:
                key = member.name.removeprefix("store/")
                s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    with session_scope(harness.db) as session:
        session.add(
            Snapshot(
                id=meta["snapshot_id"],
                owner_id=meta["owner_id"],
                machine_id=meta["machine_id"],
                status="committed",
                root_hash=meta["root_hash"],
                manifest_key=meta["manifest_key"],
                files=meta["files"],
                logical_bytes=meta["logical_bytes"],
                created_at=datetime(2025, 1, 1, tzinfo=UTC),
                committed_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
    return meta


def test_a_fixture_of_the_first_format_is_there() -> None:
    assert "v1" in FORMATS


@pytest.mark.parametrize("tag", FORMATS)
async def test_a_snapshot_of_an_earlier_format_restores(
    tag: str, s3: S3Endpoint, harness: Harness, tmp_path: Path
) -> None:
    meta = load_store(tag, s3, harness)
    out = tmp_path / "out"
    restored = await harness.restore(meta["snapshot_id"], out, owner=meta["owner_id"])
    assert restored.root_hash == meta["root_hash"]
    assert awkward.describe(out, inodes=False, xattrs=False) == meta["restored"]
    # and into a target that already holds something (a machine's own /workspace)
    again = tmp_path / "again"
    (again / "stale").mkdir(parents=True)
    await harness.restore(meta["snapshot_id"], again, owner=meta["owner_id"])
    assert awkward.describe(again, inodes=False, xattrs=False) == meta["restored"]
