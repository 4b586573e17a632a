"""Driving one engine run from the control plane: answer its questions, keep the index, and
commit only what was verified.

Snapshot: for each batch the engine sends, answer which chunks the owner's store lacks; for
each pack it seals, register the pack, open a multipart upload for it and answer a presigned URL
for its one part, of exactly the pack's size; when the engine reports the part stored, complete
the upload (the store checks the part is there, so a pack is confirmed without reading it back)
and index the pack's chunks, so a retried run skips them. The store's answers come in the
background: the conversation goes on meanwhile. Once the engine has sealed its last pack, build
the manifest while the last uploads run. When it is done: confirm every referenced pack is in the
store (a failed earlier attempt's too, which no committed snapshot vouches for yet), write the
manifest (unless a committed snapshot has the very same one), and commit. A run that fails
aborts the uploads it left open; garbage collection aborts those a killed run left.

Restores are in restore_run.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Engine

from agent.snapshot import ENGINE_VERSION, tree
from core.contracts.snapshots import SnapshotProgress, SnapshotResult
from core.snapshots import index, manifest
from core.snapshots.background import Background
from core.snapshots.channel import EngineChannel
from core.snapshots.commit_records import import_commits
from core.snapshots.index import ChunkLocation, CommitFigures, PackInfo
from core.snapshots.ledger import (
    DatabaseLedger,
    DetachedLedger,
    Ledger,
    database_unavailable,
)
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.store import ObjectStore, StoreError

log = logging.getLogger(__name__)
ProgressCallback = Callable[[SnapshotProgress], Awaitable[None] | None]


class SnapshotFailed(RuntimeError):
    """The snapshot was not committed; the message says why."""


class RestoreFailed(RuntimeError):
    """The workspace was not restored (the engine left the target as it was)."""


async def report(callback: ProgressCallback | None, progress: SnapshotProgress) -> None:
    if callback is None:
        return
    result = callback(progress)
    if result is not None:
        await result


async def engine_failure(channel: EngineChannel, what: str) -> str:
    code, stderr = await channel.finish()
    return f"{what} (engine exit status {code}): {stderr.strip()[-1500:]}".strip()


@dataclass(frozen=True)
class SnapshotTarget:
    snapshot_id: str
    owner_id: str
    machine_id: str


class SnapshotRun:
    def __init__(
        self,
        db: Engine,
        store: ObjectStore,
        policy: SnapshotPolicy,
        target: SnapshotTarget,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.policy = policy
        self.target = target
        self.on_progress = on_progress
        self.entries: list[dict[str, Any]] = []
        self.lines: list[bytes] = []  # the entries' root-hash lines
        self.locations: dict[str, ChunkLocation] = {}
        self.packs: dict[str, PackInfo] = {}
        self._sealed: dict[int, tuple[PackInfo, list[list[Any]]]] = {}
        self._open: dict[str, str] = {}  # pack id -> its upload, until completed
        self._opening: set[asyncio.Future[str]] = set()  # uploads the store is opening
        self.progress = SnapshotProgress(snapshot_id=target.snapshot_id, phase="scanning")
        self.uploaded_this_run = 0
        self._started = time.monotonic()
        self._background = Background()
        self._sending = asyncio.Lock()
        self._writing = asyncio.Lock()  # one index write at a time (SQLite has one writer)
        self._confirmed: set[str] = set()  # packs whose upload this run completed
        self._tree = manifest.TreeCheck()
        self._prepared: asyncio.Task[manifest.Built] | None = None
        self._prepared_at: dict[str, ChunkLocation] = {}
        # Chosen by `open_books`, before the first message.
        self.ledger: Ledger | None = None

    @property
    def _books(self) -> Ledger:
        assert self.ledger is not None
        return self.ledger

    def open_books(self) -> SnapshotResult | None:
        """Choose the run's books (the database, or the store while the database is out) and
        begin the snapshot there; the result of an earlier attempt that already committed (a
        retried activity), if any. Snapshots an outage left in the store are indexed first,
        so this run deduplicates against them."""
        t = self.target
        database = DatabaseLedger(self.db)
        try:
            import_commits(self.db, self.store, t.owner_id)
            done = database.committed(t.snapshot_id)
            if done is None:
                database.begin(t.snapshot_id, t.owner_id, t.machine_id)
            self.ledger = database
            return done
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.warning(
                "snapshot %s: the database is out (%s); committing to the store", t.snapshot_id, exc
            )
            self.ledger = DetachedLedger(self.store, t.owner_id, t.machine_id)
            return self.ledger.committed(t.snapshot_id)

    async def run(self, channel: EngineChannel) -> SnapshotResult:
        t = self.target
        if self.ledger is None:
            done = await asyncio.to_thread(self.open_books)
            if done is not None:
                await channel.kill()
                return done
        try:
            return await self._converse(channel)
        except BaseException as exc:
            self._background.cancel()
            if self._prepared is not None:
                self._prepared.cancel()
            await channel.kill()
            await self._abort_open_uploads()
            if isinstance(exc, Exception):
                with contextlib.suppress(Exception):  # best effort: the database may be out
                    await asyncio.to_thread(self._books.record_error, t.snapshot_id, str(exc))
            raise

    async def _abort_open_uploads(self) -> None:
        """Best effort, and briefly: garbage collection aborts whatever is left. Uploads the
        store is still opening are waited for first, or they would stay open unrecorded."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                if self._opening:
                    await asyncio.wait(set(self._opening))
                infos = {info.id: info for info, _ in self._sealed.values()}
                aborts = [
                    asyncio.to_thread(self.store.abort_upload, infos[pack_id].key, upload_id)
                    for pack_id, upload_id in self._open.items()
                    if pack_id in infos
                ]
                await asyncio.gather(*aborts, return_exceptions=True)

    async def _send(self, channel: EngineChannel, message: dict[str, Any]) -> None:
        async with self._sending:  # background tasks answer too
            await channel.send(message)

    async def _converse(self, channel: EngineChannel) -> SnapshotResult:
        while True:
            message = await self._background.first(channel.receive())
            if message is None:
                raise SnapshotFailed(await engine_failure(channel, "the engine stopped early"))
            kind = message["t"]
            if kind == "hello":
                if message.get("version") != ENGINE_VERSION:
                    raise SnapshotFailed(f"engine version {message.get('version')} is not ours")
            elif kind == "batch":
                await self._on_batch(channel, message)
            elif kind == "pack":
                await self._on_pack(channel, message)
            elif kind == "uploaded":
                await self._on_uploaded(message)
            elif kind == "sealed":
                # Every pack is known (some still uploading): build the manifest meanwhile.
                self._prepared_at = self._final_locations()
                self._prepared = asyncio.create_task(self._prepare(self._prepared_at))
            elif kind in ("progress", "scanned"):
                await self._on_stats(message["stats"], "uploading" if kind == "scanned" else None)
            elif kind == "error":
                raise SnapshotFailed(f"the engine failed: {message.get('message')}")
            elif kind == "done":
                await self._on_stats(message["stats"], "committing")
                result = await self._commit()
                await self._send(channel, {"t": "committed"})
                # Committed and verified: however the engine exits now, only its cache is at stake.
                await channel.finish()
                return result

    async def _on_stats(self, stats: dict[str, Any], phase: str | None) -> None:
        self.progress = replace(
            self.progress,
            phase=phase or self.progress.phase,
            files=int(stats.get("files", 0)),
            bytes_scanned=int(stats.get("bytes", 0)),
        )
        await report(self.on_progress, self.progress)

    async def _on_batch(self, channel: EngineChannel, message: dict[str, Any]) -> None:
        self.entries.extend(message["entries"])
        try:  # worked out while the engine walks on, not all at the commit
            self._tree.add(message["entries"])
            self.lines.extend(tree.line(tree.from_manifest(e)) for e in message["entries"])
        except manifest.ManifestError as exc:
            raise SnapshotFailed(f"the engine's tree does not hold: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotFailed(f"the engine sent a malformed entry: {exc}") from exc
        asked = [digest for digest, _size in message["chunks"]]
        present = await asyncio.to_thread(self._books.present_chunks, self.target.owner_id, asked)
        self.locations.update(present)
        needed = [number for number, digest in enumerate(asked) if digest not in present]
        await self._send(channel, {"t": "need", "batch": message["batch"], "chunks": needed})

    async def _on_pack(self, channel: EngineChannel, message: dict[str, Any]) -> None:
        t = self.target
        async with self._writing:
            info = await asyncio.to_thread(
                self._books.register_pack,
                t.owner_id,
                t.snapshot_id,
                int(message["size"]),
                len(message["chunks"]),
            )
        self._sealed[message["pack"]] = (info, message["chunks"])
        self._background.start(self._open_upload(channel, message["pack"], info))

    async def _open_upload(self, channel: EngineChannel, number: int, info: PackInfo) -> None:
        # Shielded: if the run fails meanwhile, the store still answers and the abort sees it.
        opening = asyncio.ensure_future(self._start_upload(info))
        self._opening.add(opening)
        opening.add_done_callback(self._opening.discard)
        upload_id = await asyncio.shield(opening)
        ttl = self.policy.url_ttl_seconds
        url = self.store.presign_part(info.key, upload_id, info.size, ttl)
        await self._send(channel, {"t": "put", "pack": number, "url": url})

    async def _start_upload(self, info: PackInfo) -> str:
        upload_id: str = await self._store(self.store.start_upload, info.key)
        self._open[info.id] = upload_id
        return upload_id

    async def _on_uploaded(self, message: dict[str, Any]) -> None:
        info, _table = self._sealed[message["pack"]]
        if info.id not in self._open:
            raise SnapshotFailed(f"the engine reported pack {message['pack']} before its URL")
        self._background.start(self._confirm(message["pack"], str(message["etag"])))

    async def _confirm(self, number: int, etag: str) -> None:
        """Complete the pack's upload, then index its chunks."""
        info, table = self._sealed[number]
        await self._store(
            self.store.complete_upload, info.key, self._open[info.id], etag, info.size
        )
        del self._open[info.id]
        chunks = [
            (digest, ChunkLocation(info.id, offset, length, raw, codec))
            for digest, offset, length, raw, codec in table
        ]
        async with self._writing:
            await asyncio.to_thread(
                self._books.pack_uploaded, self.target.owner_id, info.id, chunks
            )
        for digest, location in chunks:
            self.locations.setdefault(digest, location)
        self.packs[info.id] = info
        self._confirmed.add(info.id)
        del self._sealed[number]
        self.uploaded_this_run += info.size
        self.progress = replace(
            self.progress,
            phase="uploading",
            bytes_uploaded=self.uploaded_this_run,
            packs_uploaded=self.progress.packs_uploaded + 1,
        )
        await report(self.on_progress, self.progress)

    @staticmethod
    async def _store(call: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(call, *args)
        except StoreError as exc:
            raise SnapshotFailed(str(exc)) from exc

    def _final_locations(self) -> dict[str, ChunkLocation]:
        """Where each chunk will be once the packs sealed so far are uploaded."""
        locations = dict(self.locations)
        for info, table in self._sealed.values():
            for digest, offset, length, raw, codec in table:
                locations.setdefault(digest, ChunkLocation(info.id, offset, length, raw, codec))
        return locations

    async def _prepare(self, locations: dict[str, ChunkLocation]) -> manifest.Built:
        """The manifest, in its stored form."""
        t = self.target
        used = {location.pack_id for location in locations.values()}
        packs = await asyncio.to_thread(self._books.packs, used)
        missing_rows = used - set(packs)
        if missing_rows:
            raise SnapshotFailed(f"{len(missing_rows)} packs vanished from the index meanwhile")
        try:
            return await asyncio.to_thread(
                manifest.build,
                owner_id=t.owner_id,
                machine_id=t.machine_id,
                entries=self.entries,
                locations=locations,
                packs=packs,
                lines=self.lines,
                checked=self._tree,
            )
        except manifest.ManifestError as exc:
            raise SnapshotFailed(f"the engine's tree does not hold: {exc}") from exc

    async def _commit(self) -> SnapshotResult:
        t = self.target
        await self._background.settle()  # every pack of this run confirmed
        prepared = self._prepared
        if prepared is None or self.locations != self._prepared_at:
            prepared = asyncio.create_task(self._prepare(self.locations))
        built = await prepared
        data = built.data
        self.packs = {p["id"]: PackInfo(p["id"], p["key"], p["size"]) for p in built.packs}
        referenced = {p["id"] for p in built.packs}
        unchecked = await asyncio.to_thread(self._books.unreferenced, referenced)
        checks = [  # a failed earlier attempt's packs: read their size back
            asyncio.to_thread(self._check_pack, self.packs[pack_id])
            for pack_id in unchecked - self._confirmed
        ]
        key = index.manifest_key(t.owner_id, hashlib.sha256(data).hexdigest()[:32])
        problems = [problem for problem in await asyncio.gather(*checks) if problem]
        if problems:
            raise SnapshotFailed(f"{len(problems)} packs failed verification: {problems[0]}")
        await asyncio.to_thread(self._store_manifest, key, data)
        files = [e for e in self.entries if e["k"] == "f"]
        figures = CommitFigures(
            root_hash=built.root_hash,
            manifest_key=key,
            files=len(files),
            logical_bytes=sum(e["s"] for e in files),
            stored_bytes=sum(p["size"] for p in built.packs),
        )
        try:
            committed = await asyncio.to_thread(
                self._books.commit, t.snapshot_id, referenced, figures
            )
        except Exception as exc:
            raise SnapshotFailed(f"recording the commit: {exc}") from exc
        self.progress = replace(self.progress, phase="done")
        await report(self.on_progress, self.progress)
        return replace(committed, seconds=time.monotonic() - self._started)

    def _store_manifest(self, key: str, data: bytes) -> None:
        """Write the manifest, unless a committed snapshot has this very one in the store."""
        try:
            if self._books.manifest_in_use(key) and self.store.size(key) == len(data):
                return
            self.store.put(key, data)
            stored = self.store.size(key)
        except StoreError as exc:
            raise SnapshotFailed(str(exc)) from exc
        if stored != len(data):
            raise SnapshotFailed(f"the manifest {key} did not reach the store")

    def _check_pack(self, pack: PackInfo) -> str | None:
        """What is wrong with a pack's object in the store, or None."""
        try:
            size = self.store.size(pack.key)
        except StoreError as exc:
            return str(exc)
        if size is None:
            return f"pack {pack.key} is not in the store"
        if size != pack.size:
            return f"pack {pack.key} holds {size} bytes, not {pack.size}"
        return None
