"""The chunk index and snapshot rows: which chunks an owner's store holds, in which pack, and
which packs each committed snapshot needs. Synchronous (sqlmodel); sessions call it from threads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.db import session_scope
from core.models import Snapshot, SnapshotChunk, SnapshotPack, SnapshotPackRef, utcnow

_IN_BATCH = 500  # bound parameters per IN (...)


class SnapshotRecordError(RuntimeError):
    pass


class ChunkLocation(NamedTuple):
    """A tuple, not a dataclass: a snapshot makes one per chunk, tens of thousands."""

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


def packs_prefix(owner_id: str | None = None) -> str:
    """Where the owner's packs (every owner's, for None) are kept."""
    return "packs/" if owner_id is None else f"packs/{owner_id}/"


def pack_key(owner_id: str, pack_id: str) -> str:
    return f"{packs_prefix(owner_id)}{pack_id[:2]}/{pack_id}"


def manifest_key(owner_id: str, digest: str) -> str:
    """Named by content: snapshots of an unchanged workspace share one manifest object."""
    return f"manifests/{owner_id}/{digest}.json.gz"


def manifest_in_use(db: Engine, key: str, besides: str | None = None) -> bool:
    """Whether a committed snapshot (other than `besides`) has this manifest."""
    with session_scope(db) as session:
        query = select(col(Snapshot.id)).where(
            col(Snapshot.manifest_key) == key, col(Snapshot.status) == "committed"
        )
        if besides is not None:
            query = query.where(col(Snapshot.id) != besides)
        return session.execute(query.limit(1)).first() is not None


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
    chunk = SnapshotChunk
    columns = (
        col(chunk.hash),
        col(chunk.pack_id),
        col(chunk.offset),
        col(chunk.length),
        col(chunk.raw_size),
        col(chunk.codec),
    )
    with session_scope(db) as session:
        for batch in _batches(hashes):
            rows = session.execute(
                select(*columns)
                .join(SnapshotPack, col(SnapshotPack.id) == col(chunk.pack_id))
                .where(
                    col(chunk.owner_id) == owner_id,
                    col(chunk.hash).in_(batch),
                    col(SnapshotPack.state) == "uploaded",
                )
            )
            for digest, pack_id, offset, length, raw_size, codec in rows:
                found[digest] = ChunkLocation(pack_id, offset, length, raw_size, codec)
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


_CHUNK_COLUMNS = 'owner_id, hash, pack_id, "offset", length, raw_size, codec'


def insert_chunks(session: Any, rows: list[tuple[Any, ...]]) -> None:
    """Another machine of the owner may have indexed the same chunk meanwhile: first one wins.
    The driver's own executemany of one plain statement (SQLite and PostgreSQL both know
    ON CONFLICT DO NOTHING): a pack of small files brings thousands of rows, and building them
    through SQLAlchemy cost more than all the rest of a snapshot's bookkeeping."""
    if not rows:
        return
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * 7)
    connection.exec_driver_sql(
        f"INSERT INTO snapshot_chunks ({_CHUNK_COLUMNS}) VALUES ({marks}) ON CONFLICT DO NOTHING",
        rows,
    )


def pack_uploaded(
    db: Engine, owner_id: str, pack_id: str, chunks: Sequence[tuple[str, ChunkLocation]]
) -> None:
    """The machine stored the pack: its chunks join the owner's index."""
    with session_scope(db) as session:
        session.execute(
            update(SnapshotPack)
            .where(col(SnapshotPack.id) == pack_id)
            .values(state="uploaded", uploaded_at=utcnow())
        )
        rows = [
            (owner_id, digest, pack_id, loc.offset, loc.length, loc.raw_size, loc.codec)
            for digest, loc in chunks
        ]
        insert_chunks(session, rows)


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
