"""The chunk index and snapshot rows: which chunks an owner's store holds, in which pack, and
which packs each committed snapshot needs. Synchronous (sqlmodel); sessions call it from threads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.db import session_scope
from core.models import Snapshot, SnapshotChunk, SnapshotPack, SnapshotPackRef, utcnow

_IN_BATCH = 500  # bound parameters per IN (...)


class SnapshotRecordError(RuntimeError):
    pass


@dataclass(frozen=True)
class ChunkLocation:
    pack_id: str
    offset: int
    length: int
    raw_size: int
    codec: str


@dataclass(frozen=True)
class PackInfo:
    id: str
    key: str
    size: int


def pack_key(owner_id: str, pack_id: str) -> str:
    return f"packs/{owner_id}/{pack_id[:2]}/{pack_id}"


def manifest_key(owner_id: str, snapshot_id: str) -> str:
    return f"manifests/{owner_id}/{snapshot_id}.json.gz"


def _batches(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _IN_BATCH):
        yield items[start : start + _IN_BATCH]


def begin_snapshot(db: Engine, snapshot_id: str, owner_id: str, machine_id: str) -> Snapshot:
    """The snapshot's row, created pending the first time; a retry gets the same row back."""
    with session_scope(db) as session:
        row = session.get(Snapshot, snapshot_id)
        if row is None:
            row = Snapshot(id=snapshot_id, owner_id=owner_id, machine_id=machine_id)
            session.add(row)
        elif (row.owner_id, row.machine_id) != (owner_id, machine_id):
            raise SnapshotRecordError(f"snapshot {snapshot_id} belongs to another machine")
        elif row.status == "expired":
            raise SnapshotRecordError(f"snapshot {snapshot_id} has expired")
        return row


def get_snapshot(db: Engine, snapshot_id: str) -> Snapshot | None:
    with session_scope(db) as session:
        return session.get(Snapshot, snapshot_id)


def present_chunks(db: Engine, owner_id: str, hashes: Sequence[str]) -> dict[str, ChunkLocation]:
    """Those of `hashes` the owner's store holds (in packs confirmed uploaded)."""
    found: dict[str, ChunkLocation] = {}
    with session_scope(db) as session:
        for batch in _batches(hashes):
            rows = session.execute(
                select(SnapshotChunk)
                .join(SnapshotPack, col(SnapshotPack.id) == col(SnapshotChunk.pack_id))
                .where(
                    col(SnapshotChunk.owner_id) == owner_id,
                    col(SnapshotChunk.hash).in_(batch),
                    col(SnapshotPack.state) == "uploaded",
                )
            ).scalars()
            for chunk in rows:
                found[chunk.hash] = ChunkLocation(
                    chunk.pack_id, chunk.offset, chunk.length, chunk.raw_size, chunk.codec
                )
    return found


def register_pack(
    db: Engine, owner_id: str, snapshot_id: str, size: int, chunk_count: int
) -> PackInfo:
    pack_id = uuid.uuid4().hex
    info = PackInfo(pack_id, pack_key(owner_id, pack_id), size)
    with session_scope(db) as session:
        session.add(
            SnapshotPack(
                id=pack_id,
                owner_id=owner_id,
                snapshot_id=snapshot_id,
                key=info.key,
                size=size,
                chunk_count=chunk_count,
            )
        )
    return info


def _insert_ignoring_duplicates(session: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    """Another machine of the owner may have indexed the same chunk meanwhile: first one wins."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(table).values(rows).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(table).values(rows).on_conflict_do_nothing())
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise SnapshotRecordError(f"unsupported database {dialect}")


def pack_uploaded(
    db: Engine, owner_id: str, pack_id: str, chunks: Sequence[tuple[str, ChunkLocation]]
) -> None:
    """The machine stored the pack: its chunks join the owner's index."""
    table: Table = SnapshotChunk.__table__  # type: ignore[attr-defined]
    with session_scope(db) as session:
        session.execute(
            update(SnapshotPack)
            .where(col(SnapshotPack.id) == pack_id)
            .values(state="uploaded", uploaded_at=utcnow())
        )
        rows = [
            {
                "owner_id": owner_id,
                "hash": digest,
                "pack_id": pack_id,
                "offset": loc.offset,
                "length": loc.length,
                "raw_size": loc.raw_size,
                "codec": loc.codec,
            }
            for digest, loc in chunks
        ]
        for start in range(0, len(rows), _IN_BATCH // 8):
            _insert_ignoring_duplicates(session, table, rows[start : start + _IN_BATCH // 8])


def packs(db: Engine, pack_ids: Iterable[str]) -> dict[str, SnapshotPack]:
    ids = sorted(set(pack_ids))
    found: dict[str, SnapshotPack] = {}
    with session_scope(db) as session:
        for batch in _batches(ids):
            for row in session.execute(
                select(SnapshotPack).where(col(SnapshotPack.id).in_(batch))
            ).scalars():
                found[row.id] = row
    return found


def unreferenced(db: Engine, pack_ids: Iterable[str]) -> set[str]:
    """Those packs no committed snapshot references yet: their objects were never checked."""
    ids = sorted(set(pack_ids))
    referenced: set[str] = set()
    with session_scope(db) as session:
        for batch in _batches(ids):
            referenced.update(
                session.execute(
                    select(col(SnapshotPackRef.pack_id))
                    .join(Snapshot, col(Snapshot.id) == col(SnapshotPackRef.snapshot_id))
                    .where(
                        col(SnapshotPackRef.pack_id).in_(batch),
                        col(Snapshot.status) == "committed",
                    )
                ).scalars()
            )
    return set(ids) - referenced


@dataclass(frozen=True)
class CommitFigures:
    root_hash: str
    manifest_key: str
    files: int
    logical_bytes: int
    stored_bytes: int


def commit(db: Engine, snapshot_id: str, pack_ids: Iterable[str], figures: CommitFigures) -> None:
    """Reference every pack and mark the snapshot committed, in one transaction. A pack that
    garbage collection deleted meanwhile fails the foreign key, and so the commit."""
    ids = sorted(set(pack_ids))
    with session_scope(db) as session:
        uploaded = sum(
            session.execute(
                select(col(SnapshotPack.size)).where(
                    col(SnapshotPack.snapshot_id) == snapshot_id,
                    col(SnapshotPack.state) == "uploaded",
                )
            ).scalars()
        )
        for pack_id in ids:
            session.add(SnapshotPackRef(snapshot_id=snapshot_id, pack_id=pack_id))
        session.execute(
            update(Snapshot)
            .where(col(Snapshot.id) == snapshot_id)
            .values(
                status="committed",
                root_hash=figures.root_hash,
                manifest_key=figures.manifest_key,
                files=figures.files,
                logical_bytes=figures.logical_bytes,
                stored_bytes=figures.stored_bytes,
                uploaded_bytes=uploaded,
                packs=len(ids),
                error=None,
                committed_at=utcnow(),
            )
        )


def record_error(db: Engine, snapshot_id: str, error: str) -> None:
    with session_scope(db) as session:
        session.execute(
            update(Snapshot)
            .where(col(Snapshot.id) == snapshot_id, col(Snapshot.status) == "pending")
            .values(error=error[:2000])
        )


def snapshot_packs(db: Engine, snapshot_id: str) -> list[SnapshotPack]:
    with session_scope(db) as session:
        return list(
            session.execute(
                select(SnapshotPack)
                .join(SnapshotPackRef, col(SnapshotPackRef.pack_id) == col(SnapshotPack.id))
                .where(col(SnapshotPackRef.snapshot_id) == snapshot_id)
            ).scalars()
        )
