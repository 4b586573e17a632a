"""Where a snapshot run keeps its books: the chunk index and snapshot rows in the database
(`DatabaseLedger`), or, while the database is out, in memory and then in the store itself
(`DetachedLedger`).

A detached run cannot ask which chunks the store already holds, so it uploads every one; it
commits like any other run (every pack confirmed by the store, the manifest written), and then
writes a commit record beside the manifest (`commits/<owner>/<snapshot id>.json`). That record is
what makes the snapshot committed until the database takes it in (`import_commits`): a restore
reads it, and nothing is destroyed on the strength of anything less. Garbage collection only
deletes packs the database knows, so a detached run's packs are safe until they are imported.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from core.contracts.snapshots import SnapshotResult
from core.snapshots import index
from core.snapshots.commit_records import CommitRecord, commit_key, read_commit
from core.snapshots.index import ChunkLocation, CommitFigures, PackInfo
from core.snapshots.store import ObjectStore


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached (as opposed to refusing what was asked of it)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return "database is locked" not in str(exc)  # SQLite's busy writer: it will answer
    return isinstance(exc, InterfaceError)


class Ledger(Protocol):
    def committed(self, snapshot_id: str) -> SnapshotResult | None: ...

    def begin(self, snapshot_id: str, owner_id: str, machine_id: str) -> None: ...

    def present_chunks(self, owner_id: str, hashes: Sequence[str]) -> dict[str, ChunkLocation]: ...

    def register_pack(
        self, owner_id: str, snapshot_id: str, size: int, chunk_count: int
    ) -> PackInfo: ...

    def pack_uploaded(
        self, owner_id: str, pack_id: str, chunks: Sequence[tuple[str, ChunkLocation]]
    ) -> None: ...

    def packs(self, pack_ids: Iterable[str]) -> dict[str, PackInfo]: ...

    def unreferenced(self, pack_ids: Iterable[str]) -> set[str]: ...

    def manifest_in_use(self, key: str) -> bool: ...

    def commit(
        self, snapshot_id: str, pack_ids: Iterable[str], figures: CommitFigures
    ) -> SnapshotResult: ...

    def record_error(self, snapshot_id: str, error: str) -> None: ...


class DatabaseLedger:
    def __init__(self, db: Engine) -> None:
        self.db = db

    def committed(self, snapshot_id: str) -> SnapshotResult | None:
        row = index.get_snapshot(self.db, snapshot_id)
        if row is None or row.status != "committed" or row.root_hash is None:
            return None
        return SnapshotResult(
            snapshot_id=row.id,
            root_hash=row.root_hash,
            files=row.files,
            logical_bytes=row.logical_bytes,
            uploaded_bytes=row.uploaded_bytes,
            stored_bytes=row.stored_bytes,
            packs=row.packs,
            seconds=0.0,
        )

    def begin(self, snapshot_id: str, owner_id: str, machine_id: str) -> None:
        index.begin_snapshot(self.db, snapshot_id, owner_id, machine_id)

    def present_chunks(self, owner_id: str, hashes: Sequence[str]) -> dict[str, ChunkLocation]:
        return index.present_chunks(self.db, owner_id, hashes)

    def register_pack(
        self, owner_id: str, snapshot_id: str, size: int, chunk_count: int
    ) -> PackInfo:
        return index.register_pack(self.db, owner_id, snapshot_id, size, chunk_count)

    def pack_uploaded(
        self, owner_id: str, pack_id: str, chunks: Sequence[tuple[str, ChunkLocation]]
    ) -> None:
        index.pack_uploaded(self.db, owner_id, pack_id, chunks)

    def packs(self, pack_ids: Iterable[str]) -> dict[str, PackInfo]:
        return {
            pack_id: PackInfo(pack_id, row.key, row.size)
            for pack_id, row in index.packs(self.db, pack_ids).items()
        }

    def unreferenced(self, pack_ids: Iterable[str]) -> set[str]:
        return index.unreferenced(self.db, pack_ids)

    def manifest_in_use(self, key: str) -> bool:
        return index.manifest_in_use(self.db, key)

    def commit(
        self, snapshot_id: str, pack_ids: Iterable[str], figures: CommitFigures
    ) -> SnapshotResult:
        index.commit(self.db, snapshot_id, pack_ids, figures)
        result = self.committed(snapshot_id)
        assert result is not None
        return result

    def record_error(self, snapshot_id: str, error: str) -> None:
        index.record_error(self.db, snapshot_id, error)


class DetachedLedger:
    """A run's books while the database is out: nothing is known to be stored already, every
    pack is this run's own, and the commit is a record in the store."""

    def __init__(self, store: ObjectStore, owner_id: str, machine_id: str) -> None:
        self.store = store
        self.owner_id = owner_id
        self.machine_id = machine_id
        self._packs: dict[str, PackInfo] = {}
        self._uploaded: set[str] = set()

    def committed(self, snapshot_id: str) -> SnapshotResult | None:
        record = read_commit(self.store, self.owner_id, snapshot_id)
        return record.result() if record is not None else None

    def begin(self, snapshot_id: str, owner_id: str, machine_id: str) -> None:
        return None

    def present_chunks(self, owner_id: str, hashes: Sequence[str]) -> dict[str, ChunkLocation]:
        return {}

    def register_pack(
        self, owner_id: str, snapshot_id: str, size: int, chunk_count: int
    ) -> PackInfo:
        pack_id = uuid.uuid4().hex
        info = PackInfo(pack_id, index.pack_key(owner_id, pack_id), size)
        self._packs[pack_id] = info
        return info

    def pack_uploaded(
        self, owner_id: str, pack_id: str, chunks: Sequence[tuple[str, ChunkLocation]]
    ) -> None:
        self._uploaded.add(pack_id)

    def packs(self, pack_ids: Iterable[str]) -> dict[str, PackInfo]:
        return {p: self._packs[p] for p in pack_ids if p in self._packs}

    def unreferenced(self, pack_ids: Iterable[str]) -> set[str]:
        return set()  # every pack is this run's, each confirmed by the store as it completed

    def manifest_in_use(self, key: str) -> bool:
        return False

    def commit(
        self, snapshot_id: str, pack_ids: Iterable[str], figures: CommitFigures
    ) -> SnapshotResult:
        ids = set(pack_ids)
        record = CommitRecord(
            snapshot_id=snapshot_id,
            owner_id=self.owner_id,
            machine_id=self.machine_id,
            root_hash=figures.root_hash,
            manifest_key=figures.manifest_key,
            files=figures.files,
            logical_bytes=figures.logical_bytes,
            stored_bytes=figures.stored_bytes,
            uploaded_bytes=sum(self._packs[p].size for p in ids),
            packs=len(ids),
            committed_at=datetime.now(UTC).isoformat(),
        )
        data = json.dumps(asdict(record)).encode()
        key = commit_key(self.owner_id, snapshot_id)
        self.store.put(key, data)
        if self.store.size(key) != len(data):
            raise OSError(f"the commit record {key} did not reach the store")
        return record.result()

    def record_error(self, snapshot_id: str, error: str) -> None:
        return None
