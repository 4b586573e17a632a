"""Commit records: a snapshot committed while the database was out is recorded in the store,
beside its manifest, until the database takes it in. `import_commits` does that (garbage
collection and every snapshot run call it once the database answers), in one transaction per
snapshot, and then deletes the record."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from core.contracts.snapshots import SnapshotResult
from core.db import session_scope
from core.models import Snapshot, SnapshotPack, SnapshotPackRef
from core.snapshots import index, manifest
from core.snapshots.store import ObjectStore, StoreError

log = logging.getLogger(__name__)

PREFIX = "commits/"


def commit_key(owner_id: str, snapshot_id: str) -> str:
    return f"{PREFIX}{owner_id}/{snapshot_id}.json"


@dataclass(frozen=True, kw_only=True)
class CommitRecord:
    """Enough to restore the snapshot, and, with its manifest, to index it."""

    snapshot_id: str
    owner_id: str
    machine_id: str
    root_hash: str
    manifest_key: str
    files: int
    logical_bytes: int
    stored_bytes: int
    uploaded_bytes: int
    packs: int
    committed_at: str

    def result(self) -> SnapshotResult:
        return SnapshotResult(
            snapshot_id=self.snapshot_id,
            root_hash=self.root_hash,
            files=self.files,
            logical_bytes=self.logical_bytes,
            uploaded_bytes=self.uploaded_bytes,
            stored_bytes=self.stored_bytes,
            packs=self.packs,
            seconds=0.0,
        )


def read_commit(store: ObjectStore, owner_id: str, snapshot_id: str) -> CommitRecord | None:
    key = commit_key(owner_id, snapshot_id)
    if store.size(key) is None:
        return None
    return CommitRecord(**json.loads(store.get(key)))


def import_commits(db: Engine, store: ObjectStore, owner_id: str | None = None) -> int:
    """Index every snapshot committed while the database was out (one owner's, or all);
    how many were new to it."""
    imported = 0
    try:
        keys = store.keys(PREFIX if owner_id is None else f"{PREFIX}{owner_id}/")
    except StoreError as exc:
        log.warning("commit records not listed (next time): %s", exc)
        return 0
    for key in keys:
        try:
            record = CommitRecord(**json.loads(store.get(key)))
            stored = manifest.decode(store.get(record.manifest_key), record.root_hash)
        except (StoreError, manifest.ManifestError, ValueError, TypeError) as exc:
            # Left in place (it is what makes the snapshot committed): said, never fatal.
            log.error("commit record %s not imported: %s", key, exc)
            continue
        imported += _index(db, record, stored)
        store.delete([key])
    return imported


def _index(db: Engine, record: CommitRecord, stored: dict[str, Any]) -> int:
    """The snapshot's row, its packs, their chunks and references, in one transaction."""
    with session_scope(db) as session:
        row = session.get(Snapshot, record.snapshot_id)
        if row is not None and row.status != "pending":
            return 0  # imported already (or expired since)
        if row is None:
            row = Snapshot(
                id=record.snapshot_id, owner_id=record.owner_id, machine_id=record.machine_id
            )
        committed_at = datetime.fromisoformat(record.committed_at)
        row.status = "committed"
        row.root_hash = record.root_hash
        row.manifest_key = record.manifest_key
        row.files = record.files
        row.logical_bytes = record.logical_bytes
        row.stored_bytes = record.stored_bytes
        row.uploaded_bytes = record.uploaded_bytes
        row.packs = record.packs
        row.error = None
        row.committed_at = committed_at
        session.add(row)
        session.flush()
        packs: list[dict[str, Any]] = stored["packs"]
        counts = [0] * len(packs)
        for pack_number, *_rest in stored["chunks"].values():
            counts[pack_number] += 1
        for number, pack in enumerate(packs):
            if session.get(SnapshotPack, pack["id"]) is None:
                session.add(
                    SnapshotPack(
                        id=pack["id"],
                        owner_id=record.owner_id,
                        snapshot_id=record.snapshot_id,
                        key=pack["key"],
                        size=pack["size"],
                        chunk_count=counts[number],
                        state="uploaded",
                        uploaded_at=committed_at,
                    )
                )
        session.flush()
        index.insert_chunks(
            session,
            [
                (record.owner_id, digest, packs[n]["id"], offset, length, raw, codec)
                for digest, (n, offset, length, raw, codec) in stored["chunks"].items()
            ],
        )
        for pack in packs:
            session.merge(SnapshotPackRef(snapshot_id=record.snapshot_id, pack_id=pack["id"]))
    return 1
