"""Restoring a snapshot: read and check the manifest (from the database's commit, or the commit
record a database outage left in the store), hand the engine presigned GET URLs, and accept only
the root hash the snapshot committed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Engine

from core.contracts.snapshots import RestoreResult, SnapshotProgress
from core.snapshots import index, manifest
from core.snapshots.channel import EngineChannel, EngineGone
from core.snapshots.commit_records import read_commit
from core.snapshots.ledger import database_unavailable
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.session import ProgressCallback, RestoreFailed, engine_failure, report
from core.snapshots.store import ObjectStore, StoreError


class RestoreRun:
    def __init__(
        self,
        db: Engine,
        store: ObjectStore,
        policy: SnapshotPolicy,
        snapshot_id: str,
        owner_id: str,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.policy = policy
        self.snapshot_id = snapshot_id
        self.owner_id = owner_id
        self.on_progress = on_progress
        self._started = time.monotonic()
        self._loaded: dict[str, Any] | None = None

    async def load(self) -> dict[str, Any]:
        """The snapshot's manifest, checked against its committed root hash (read once: the
        activity checks it before connecting, the run uses it)."""
        if self._loaded is not None:
            return self._loaded
        key, root = await asyncio.to_thread(self._committed)
        try:
            data = await asyncio.to_thread(self.store.get, key)
            self._loaded = await asyncio.to_thread(manifest.decode, data, root)
        except (StoreError, manifest.ManifestError) as exc:
            raise RestoreFailed(f"snapshot {self.snapshot_id}: {exc}") from exc
        return self._loaded

    def _committed(self) -> tuple[str, str]:
        """The committed snapshot's manifest key and root hash: from the database, or from its
        commit record in the store (committed while the database was out, or while it is)."""
        try:
            row = index.get_snapshot(self.db, self.snapshot_id)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            row = None
        if row is not None and row.owner_id != self.owner_id:
            row = None
        if row is not None and row.status == "committed":
            assert row.root_hash is not None and row.manifest_key is not None
            return row.manifest_key, row.root_hash
        try:
            record = read_commit(self.store, self.owner_id, self.snapshot_id)
        except StoreError as exc:
            raise RestoreFailed(f"snapshot {self.snapshot_id}: {exc}") from exc
        if record is not None:
            return record.manifest_key, record.root_hash
        if row is None:
            raise RestoreFailed(f"snapshot {self.snapshot_id} not found")
        raise RestoreFailed(f"snapshot {self.snapshot_id} is {row.status}, not committed")

    async def run(self, channel: EngineChannel) -> RestoreResult:
        try:
            return await self._converse(channel, await self.load())
        except BaseException:
            await channel.kill()
            raise

    async def _converse(self, channel: EngineChannel, loaded: dict[str, Any]) -> RestoreResult:
        progress = SnapshotProgress(snapshot_id=self.snapshot_id, phase="downloading")
        while True:
            message = await channel.receive()
            if message is None:
                raise RestoreFailed(await engine_failure(channel, "the engine stopped early"))
            kind = message["t"]
            if kind == "hello":
                needed = {location[4] for location in loaded["chunks"].values()}
                lacking = needed - set(message.get("codecs", []))
                if lacking:
                    raise RestoreFailed(
                        f"the machine cannot decode {', '.join(sorted(lacking))}: "
                        "install zstd or python3-zstandard there"
                    )
                ttl = self.policy.url_ttl_seconds
                packs = [
                    {"url": self.store.presign_get(p["key"], ttl), "size": p["size"]}
                    for p in loaded["packs"]
                ]
                body = {"entries": loaded["entries"], "chunks": loaded["chunks"]}
                await channel.send({"t": "restore", "manifest": body, "packs": packs})
            elif kind == "progress":
                progress = self._progress(progress, message["stats"])
                await report(self.on_progress, progress)
            elif kind == "error":
                raise RestoreFailed(f"restore failed: {message.get('message')}")
            elif kind == "restored":
                await channel.finish()
                if message["root"] != loaded["root_hash"]:
                    raise RestoreFailed(
                        f"the restored tree's root hash {message['root']} is not the "
                        f"snapshot's {loaded['root_hash']}"
                    )
                stats = message["stats"]
                done = replace(self._progress(progress, stats), phase="done")
                await report(self.on_progress, done)
                return RestoreResult(
                    snapshot_id=self.snapshot_id,
                    root_hash=message["root"],
                    files=int(stats["files"]),
                    bytes=int(stats["bytes"]),
                    downloaded_bytes=int(stats["downloaded_bytes"]),
                    seconds=time.monotonic() - self._started,
                    reused_bytes=int(stats.get("reused_bytes", 0)),
                )
            else:
                raise EngineGone(f"unexpected message {kind!r} from the engine")

    @staticmethod
    def _progress(progress: SnapshotProgress, stats: dict[str, Any]) -> SnapshotProgress:
        return replace(
            progress,
            files=int(stats.get("files", 0)),
            # What an earlier attempt staged counts as done: the pack bytes it spared.
            bytes_downloaded=int(stats.get("downloaded_bytes", 0))
            + int(stats.get("reused_pack_bytes", 0)),
        )
