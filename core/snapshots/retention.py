"""Retention (which snapshots to keep) and garbage collection (which packs nobody needs).

Retention keeps the last `keep_last` committed snapshots of every machine, and drops all of a
`deleted` machine's snapshots `deleted_retention_days` after it was deleted (0: never); each
owner's own values where they set them (`owner_retention`), the policy's elsewhere. An
expired snapshot loses its manifest and its pack references; its row stays as history.

Garbage collection deletes packs no committed snapshot references, once they are older than
the grace period (a failed snapshot's packs wait that long for its retry to resume from them).
The pack's rows go first, each in its own transaction that re-checks for references, and the
object after: a commit racing with it either fails on the foreign key or keeps the pack. Pack
uploads left open by a snapshot that died before completing them are aborted after the same grace
period: until then a store such as S3 keeps (and bills) their parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.db import session_scope
from core.models import Machine, Snapshot, SnapshotChunk, SnapshotPack, SnapshotPackRef
from core.snapshots import index
from core.snapshots.commit_records import import_commits
from core.snapshots.owner_retention import rules_for
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.store import ObjectStore


@dataclass(frozen=True)
class GarbageReport:
    expired_snapshots: int
    deleted_packs: int
    deleted_bytes: int
    aborted_uploads: int


def _expired_ids(
    db: Engine, policy: SnapshotPolicy, now: datetime, owner_id: str | None
) -> list[str]:
    query = select(Snapshot).where(col(Snapshot.status) == "committed")
    if owner_id is not None:
        query = query.where(col(Snapshot.owner_id) == owner_id)
    with session_scope(db) as session:
        rows = list(session.execute(query).scalars())
        machines = {r.machine_id for r in rows}
        deleted_since = {
            m.id: m.updated_at
            for m in session.execute(
                select(Machine).where(
                    col(Machine.id).in_(machines), col(Machine.status) == "deleted"
                )
            ).scalars()
        }
        rules = rules_for(session, policy, {r.owner_id for r in rows})
    by_machine: dict[tuple[str, str], list[Snapshot]] = {}
    for row in rows:
        by_machine.setdefault((row.owner_id, row.machine_id), []).append(row)
    expired: list[str] = []
    for (owner, machine_id), snapshots in by_machine.items():
        rule = rules[owner]
        snapshots.sort(key=lambda s: (s.committed_at or s.created_at, s.id), reverse=True)
        since = deleted_since.get(machine_id)
        cutoff = now - timedelta(days=rule.deleted_retention_days)
        if rule.deleted_retention_days and since is not None and since < cutoff:
            expired.extend(s.id for s in snapshots)
        else:
            expired.extend(s.id for s in snapshots[rule.keep_last :])
    return expired


def apply_retention(
    db: Engine,
    store: ObjectStore,
    policy: SnapshotPolicy,
    now: datetime,
    owner_id: str | None = None,
) -> int:
    """Expire the snapshots their owner's retention no longer keeps; returns how many."""
    expired = _expired_ids(db, policy, now, owner_id)
    for snapshot_id in expired:
        with session_scope(db) as session:
            row = session.get(Snapshot, snapshot_id)
            if row is None or row.status != "committed":
                continue
            manifest = row.manifest_key
            session.execute(
                delete(SnapshotPackRef).where(col(SnapshotPackRef.snapshot_id) == snapshot_id)
            )
            row.status = "expired"
            row.manifest_key = None
        # Snapshots of an unchanged workspace share their manifest: the last one deletes it.
        if manifest and not index.manifest_in_use(db, manifest, besides=snapshot_id):
            store.delete([manifest])
    return len(expired)


def collect_garbage(
    db: Engine,
    store: ObjectStore,
    policy: SnapshotPolicy,
    now: datetime,
    owner_id: str | None = None,
) -> tuple[int, int]:
    """Delete unreferenced packs older than the grace period; (packs, bytes) deleted."""
    cutoff = now - timedelta(seconds=policy.gc_grace_seconds)
    unreferenced = ~exists().where(col(SnapshotPackRef.pack_id) == col(SnapshotPack.id))
    query = select(col(SnapshotPack.id)).where(col(SnapshotPack.created_at) < cutoff, unreferenced)
    if owner_id is not None:
        query = query.where(col(SnapshotPack.owner_id) == owner_id)
    with session_scope(db) as session:
        candidates = list(session.execute(query).scalars())
        # Snapshots that never committed within the grace period are abandoned.
        abandoned = update(Snapshot).where(
            col(Snapshot.status) == "pending", col(Snapshot.created_at) < cutoff
        )
        if owner_id is not None:
            abandoned = abandoned.where(col(Snapshot.owner_id) == owner_id)
        session.execute(abandoned.values(status="failed"))
    deleted: list[SnapshotPack] = []
    for pack_id in candidates:
        with session_scope(db) as session:
            pack = session.get(SnapshotPack, pack_id)
            referenced = session.execute(
                select(exists().where(col(SnapshotPackRef.pack_id) == pack_id))
            ).scalar()
            if pack is None or referenced:
                continue
            session.execute(delete(SnapshotChunk).where(col(SnapshotChunk.pack_id) == pack_id))
            session.delete(pack)
            deleted.append(pack)
    store.delete(pack.key for pack in deleted)
    return len(deleted), sum(pack.size for pack in deleted)


def abort_stale_uploads(
    store: ObjectStore, policy: SnapshotPolicy, now: datetime, owner_id: str | None = None
) -> int:
    """Abort pack uploads opened before the grace period; how many."""
    cutoff = now - timedelta(seconds=policy.gc_grace_seconds)
    stale = [u for u in store.open_uploads(index.packs_prefix(owner_id)) if u.initiated < cutoff]
    for upload in stale:
        store.abort_upload(upload.key, upload.upload_id)
    return len(stale)


def expire_and_collect(
    db: Engine,
    store: ObjectStore,
    policy: SnapshotPolicy,
    now: datetime,
    owner_id: str | None = None,
) -> GarbageReport:
    # Snapshots an outage left in the store count for retention like any other.
    import_commits(db, store, owner_id)
    expired = apply_retention(db, store, policy, now, owner_id)
    packs, size = collect_garbage(db, store, policy, now, owner_id)
    aborted = abort_stale_uploads(store, policy, now, owner_id)
    return GarbageReport(expired, packs, size, aborted)
