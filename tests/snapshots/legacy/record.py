"""Record a stored snapshot of today's manifest format as a test fixture: snapshot the awkward
workspace with the engine as it is, restore it, and keep every object of the store plus what
the restore gave (the description the fixture's test checks, byte for byte).

    .venv/bin/python -m tests.snapshots.legacy.record v1

Run it once per format, with the code that writes that format, and never again for it: the
fixture must stay what the old code made (a hibernated machine's snapshot may be its only copy).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tarfile
import tempfile
from pathlib import Path

from core.db import make_engine, migrate, session_scope
from core.models import Snapshot, User
from core.snapshots.policy import SnapshotPolicy
from tests.fixtures.s3 import running_s3
from tests.snapshots import awkward
from tests.snapshots.helpers import Harness

HERE = Path(__file__).resolve().parent
OWNER, MACHINE, SNAPSHOT = "alice", "m-legacy", "legacy-snapshot"


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


async def _record(work: Path, tag: str) -> None:
    awkward.require_user_xattrs(work)
    workspace = work / "ws"
    awkward.build(workspace)
    db = make_engine(f"sqlite:///{work / 'dumont.db'}")
    migrate(db)
    with session_scope(db) as session:
        session.add(User(id=OWNER, name=OWNER))
    with running_s3(work / "s3") as s3:
        harness = Harness(db, s3.store(), SnapshotPolicy(pack_mib=4), work / "cache")
        made = await harness.snapshot(workspace, SNAPSHOT, owner=OWNER, machine=MACHINE)
        out = work / "out"
        restored = await harness.restore(SNAPSHOT, out, owner=OWNER)
        assert restored.root_hash == made.root_hash
        with session_scope(db) as session:
            row = session.get(Snapshot, SNAPSHOT)
            assert row is not None and row.manifest_key is not None
            manifest_key = row.manifest_key
        objects: dict[str, bytes] = {}
        for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
            for item in page.get("Contents", []):
                body = s3.client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read()
                objects[item["Key"]] = body
    meta = {
        "format": tag,
        "owner_id": OWNER,
        "machine_id": MACHINE,
        "snapshot_id": SNAPSHOT,
        "manifest_key": manifest_key,
        "root_hash": made.root_hash,
        "files": made.files,
        "logical_bytes": made.logical_bytes,
        # what this format's restore gave: the test holds every later engine to it
        "restored": awkward.describe(out, inodes=False, xattrs=False),
        "source": awkward.describe(workspace),
    }
    target = HERE / f"store-{tag}.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        _add(archive, "meta.json", json.dumps(meta, indent=1, sort_keys=True).encode())
        for key, body in sorted(objects.items()):
            _add(archive, f"store/{key}", body)
    print(f"wrote {target} ({target.stat().st_size} bytes, {len(objects)} objects)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag", help="the format's name, e.g. v1 (never one already recorded)")
    args = parser.parse_args()
    if (HERE / f"store-{args.tag}.tar.gz").exists():
        raise SystemExit(f"store-{args.tag}.tar.gz exists: a recorded format is never re-recorded")
    with tempfile.TemporaryDirectory(prefix="dumont-legacy-") as tmp:
        asyncio.run(_record(Path(tmp), args.tag))


if __name__ == "__main__":
    main()
