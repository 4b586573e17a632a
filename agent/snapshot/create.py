"""`create`: walk, chunk and hash the workspace, upload what the store lacks, in one pass.

The main thread walks the tree and sends it in batches. Files the stat cache does not vouch for
are read by a pool of processes (content-defined chunking holds the GIL, so threads would run it
on one core), small files many to a job, big ones a region at a time. A worker hashes each chunk
and, unless the chunk is one the last snapshot already had, compresses it right away into its
job's region of a shared memory arena: the data is read and hashed once, and only the payloads
the control plane then asks for are copied from the arena into a pack. A chunk with no payload
(a file the cache vouched for, or one the last snapshot had) is read again by a thread if the
store lacks it after all, checked against its hash and compressed there. The reader thread takes
the control plane's answers (which chunks it needs, presigned URLs); a thread pool uploads sealed
packs. Memory is bounded: the arena's regions are reused once their chunks are answered, and the
walk waits while more than `window` bytes of packs are held.

Messages out: hello, batch, progress, scanned, pack, sealed, uploaded, done, error.
Messages in: need (per batch), put (per pack), committed, abort.
"""

from __future__ import annotations

import collections
import hashlib
import mmap
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from agent.snapshot import ENGINE_VERSION, chunk_jobs, chunker, fidelity, transfer
from agent.snapshot.chunk_jobs import REGION, Found, Item
from agent.snapshot.codec import Compressor
from agent.snapshot.scan import walk
from agent.snapshot.statcache import StatCache
from agent.snapshot.tree import DIR, FILE, HARDLINK, LINK
from agent.snapshot.wire import Message, Wire

BATCH_ENTRIES = 2000
PROGRESS_SECONDS = 1.0
# A job of small files stops taking more at this many.
JOB_FILES = 256


class SnapshotFailed(RuntimeError):
    pass


class _Pack:
    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.table: list[list[Any]] = []  # [hash, offset, length, raw size, codec]
        self.size = 0
        self.regions: list[int] = []  # of the arena, one per part sent straight from there

    def add(self, digest: str, codec: str, payload: Any, raw_size: int) -> None:
        self.table.append([digest, self.size, len(payload), raw_size, codec])
        self.parts.append(payload)
        self.size += len(payload)


class _Job:
    """Files sent to a worker together, and what becomes of each when the job is done."""

    def __init__(self, region: int, items: list[Item], files: list[Any], future: Future) -> None:
        self.region = region
        self.items = items
        self.files = files  # per item: [entry, stat, chunks so far]
        self.future = future


class CreateEngine:
    def __init__(
        self,
        workspace: str,
        wire: Wire,
        cache: StatCache,
        compressor: Compressor,
        *,
        workers: int,
        uploaders: int,
        pack_size: int,
        window: int,
    ) -> None:
        self.workspace = workspace
        self.wire = wire
        self.cache = cache
        self.compressor = compressor
        self.pack_size = pack_size
        self.window = window
        # Half again the window: packs in flight hold their regions until they are uploaded.
        regions = max(4, min(48, window * 3 // 2 // REGION))
        self._arena = mmap.mmap(-1, regions * REGION)
        self._view = memoryview(self._arena)
        chunk_jobs.share(self._arena, frozenset(cache.known_chunks()), compressor)
        self._free_regions = list(range(regions))
        self._region_refs = [0] * regions
        # Forked now, before any thread exists: forking a threaded process is unsafe.
        self._pool = None
        if workers > 1:
            context = multiprocessing.get_context("fork")
            self._pool = ProcessPoolExecutor(
                workers, mp_context=context, initializer=chunk_jobs.worker_init
            )
            for job in [self._pool.submit(chunk_jobs.ready) for _ in range(workers)]:
                job.result()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._jobs_ahead = 2 * workers
        self._small: list[tuple[dict[str, Any], os.stat_result]] = []
        self._small_bytes = 0
        self._resumed: list[tuple[Any, Item]] = []
        self._compress_pool = ThreadPoolExecutor(workers, thread_name_prefix="compress")
        self._upload_pool = ThreadPoolExecutor(uploaders, thread_name_prefix="upload")
        self._cond = threading.Condition()
        self._held = 0  # bytes in packs not yet uploaded (and chunks read back to compress)
        self._payloads: dict[str, tuple[int, int, int, str]] = {}  # hash -> region, off, len, codec
        self._located: dict[str, tuple[str, int, int]] = {}  # hash -> (path, offset, size)
        self._batches: dict[int, list[str]] = {}
        self._batch_count = 0
        self._seen: set = set()  # chunk hashes already put to the control plane
        self._entries: list[dict[str, Any]] = []
        self._links = fidelity.HardLinks()
        self._asked: list[tuple[str, int]] = []
        self._asked_bytes = 0
        self._compressing = 0
        self._pack = _Pack()
        self._sealed: dict[int, _Pack] = {}
        self._packs_sealed = 0
        self._packs_uploaded = 0
        self._error: str | None = None
        self._finished: str | None = None  # "committed" or "abort"
        self.stats = {"files": 0, "dirs": 0, "links": 0, "bytes": 0, "read_bytes": 0}
        self.stats.update({"chunks": 0, "sent_chunks": 0, "needed_chunks": 0})
        self.stats.update({"packed_raw_bytes": 0, "uploaded_bytes": 0, "packs": 0})

    # --- shared state ------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        with self._cond:
            if self._error is None:
                self._error = message
            self._cond.notify_all()

    def _wait(self, ready: Any) -> None:
        """Wait until ready() (under the lock); raise if a thread failed meanwhile."""
        with self._cond:
            while self._error is None and not ready():
                self._cond.wait(0.5)
            if self._error is not None:
                raise SnapshotFailed(self._error)

    def _release(self, region: int) -> None:
        """One user of a region less (lock held); the last one frees it."""
        self._region_refs[region] -= 1
        if self._region_refs[region] == 0:
            self._free_regions.append(region)
            self._cond.notify_all()

    # --- the control plane's answers (reader thread) ---------------------------------------

    def _read_answers(self) -> None:
        try:
            while True:
                message = self.wire.receive()
                if message is None:
                    self._fail("the control plane closed the session")
                    return
                kind = message["t"]
                if kind == "need":
                    self._on_need(message)
                elif kind == "put":
                    self._on_put(message)
                elif kind in ("committed", "abort"):
                    with self._cond:
                        self._finished = kind
                        self._cond.notify_all()
                    return
        except Exception as exc:  # noqa: BLE001 - any failure ends the snapshot, with its reason
            self._fail(f"reading the control plane's answers: {exc}")

    def _on_need(self, message: Message) -> None:
        needed = set(message["chunks"])
        with self._cond:
            # Popped under the lock, with the compressions counted in the same breath: otherwise
            # the main thread could see no batch and nothing compressing, seal the last pack and
            # say "done" while this batch's chunks are still to be packed.
            asked = self._batches.pop(message["batch"])
            for index, digest in enumerate(asked):
                payload = self._payloads.pop(digest, None)
                if index in needed:
                    if payload is None:
                        self._compressing += 1
                        self._compress_pool.submit(self._compress, digest)
                    else:
                        self._pack_payload(digest, payload)
                elif payload is not None:
                    self._release(payload[0])
            self.stats["needed_chunks"] += len(needed)
            self._cond.notify_all()

    def _pack_payload(self, digest: str, payload: tuple[int, int, int, str]) -> None:
        """A chunk the worker compressed joins the pack as a view of the arena, uploaded from
        there: its region stays taken until then (lock held)."""
        region, offset, length, codec = payload
        start = region * REGION + offset
        self._held += length
        self._pack.regions.append(region)
        self._add_to_pack(
            digest, codec, self._view[start : start + length], self._located[digest][2]
        )

    def _add_to_pack(self, digest: str, codec: str, payload: Any, raw_size: int) -> None:
        """(lock held)"""
        self._pack.add(digest, codec, payload, raw_size)
        self.stats["packed_raw_bytes"] += raw_size
        if self._pack.size >= self.pack_size:
            self._seal()

    def _read_chunk(self, digest: str) -> bytes:
        """A chunk read back from its file, which must not have changed since it was hashed."""
        path, offset, size = self._located[digest]
        with open(os.path.join(self.workspace, path), "rb", buffering=0) as handle:
            data = os.pread(handle.fileno(), size, offset)
        if hashlib.sha256(data).hexdigest() != digest:
            raise SnapshotFailed(f"{path} changed while the snapshot ran; try again")
        return data

    def _on_put(self, message: Message) -> None:
        with self._cond:
            pack = self._sealed.pop(message["pack"])
        self._upload_pool.submit(self._upload, message["pack"], message["url"], pack)

    # --- compress, pack, upload (pools) ---------------------------------------------------

    def _compress(self, digest: str) -> None:
        try:
            size = self._located[digest][2]
            self._wait(lambda: self._held + size <= self.window)
            with self._cond:
                self._held += size
            data = self._read_chunk(digest)
            codec, payload = self.compressor.compress(data)
            with self._cond:
                self._held += len(payload) - size
                self._add_to_pack(digest, codec, payload, size)
                self._compressing -= 1
                self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001
            self._fail(f"compressing a chunk: {exc}")

    def _seal(self) -> None:
        """Close the current pack and ask for its URL (lock held)."""
        pack, self._pack = self._pack, _Pack()
        number = self._packs_sealed
        self._packs_sealed += 1
        self._sealed[number] = pack
        self.wire.send("pack", pack=number, size=pack.size, chunks=pack.table)

    def _upload(self, number: int, url: str, pack: _Pack) -> None:
        size = pack.size
        try:
            etag = transfer.put(url, pack.parts, size)
        except Exception as exc:  # noqa: BLE001
            self._fail(f"uploading pack {number}: {exc}")
            return
        # Told before it counts as uploaded: otherwise the main thread could send "done" ahead
        # of this message and the control plane would commit without this pack's chunks.
        self.wire.send("uploaded", pack=number, size=size, etag=etag)
        with self._cond:
            self._held -= size
            for region in pack.regions:
                self._release(region)
            self._packs_uploaded += 1
            self.stats["uploaded_bytes"] += size
            self.stats["packs"] += 1
            self._cond.notify_all()

    # --- the walk (main thread) -------------------------------------------------------------

    def run(self) -> int:
        self.wire.send(
            "hello", version=ENGINE_VERSION, mode="create", codec=self.compressor.backend
        )
        reader = threading.Thread(target=self._read_answers, name="answers", daemon=True)
        reader.start()
        try:
            self._walk()
            self._wait(lambda: not self._batches and self._compressing == 0)
            with self._cond:
                if self._pack.table:
                    self._seal()
            self.wire.send("sealed")  # no more packs: the manifest can be built meanwhile
            self._wait(lambda: self._packs_uploaded == self._packs_sealed)
            self.wire.send("done", stats=self.stats)
            # What the cache says holds whether or not the commit does: write it meanwhile.
            saver = threading.Thread(target=self.cache.save, name="cache", daemon=True)
            saver.start()
            self._wait(lambda: self._finished is not None)
            saver.join()
            if self._finished != "committed":
                raise SnapshotFailed("the control plane aborted the snapshot")
            return 0
        except (SnapshotFailed, OSError) as exc:
            self.wire.send("error", message=str(exc))
            return 1
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._compress_pool.shutdown(wait=False)
            self._upload_pool.shutdown(wait=False)

    def _walk(self) -> None:
        last_progress = time.monotonic()
        for path, kind, st in walk(self.workspace):
            first = self._links.earlier_name(path, st) if kind == FILE else None
            if first is not None:  # another name of a file already in the tree
                self._add({"p": path, "k": HARDLINK, "l": first})
                continue
            entry: dict[str, Any] = {"p": path, "k": kind, "m": st.st_mode & 0o7777}
            entry.update({"t": st.st_mtime_ns, "u": st.st_uid, "g": st.st_gid})
            if kind in (DIR, FILE):
                full = self.workspace if path == "." else os.path.join(self.workspace, path)
                entry.update(fidelity.extras(full, kind == FILE, st))
            if kind == DIR:
                self.stats["dirs"] += 1
            elif kind == LINK:
                entry["m"] = 0
                entry["l"] = os.readlink(os.path.join(self.workspace, path))
                self.stats["links"] += 1
            elif kind == FILE:
                cached = self.cache.lookup(path, st)
                if cached is not None:
                    self._add_file(entry, st, cached, ask=True)
                elif st.st_size >= chunker.MIN_CHUNK:
                    self._submit([(entry, st, [])], [(path, 0, st.st_size)])
                else:
                    self._small.append((entry, st))
                    self._small_bytes += st.st_size
                    if len(self._small) >= JOB_FILES or self._small_bytes >= REGION // 2:
                        self._submit_small()
                self._collect(self._jobs_ahead)
                self._submit_resumed()
                continue  # _add_file records the entry
            self._add(entry)
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                self.wire.send("progress", stats=self.stats)
        self._submit_small()
        while self._jobs or self._resumed:
            self._collect(0)
            self._submit_resumed()
        self._flush()
        self.wire.send("scanned", stats=self.stats)

    def _submit_resumed(self) -> None:
        """Big files go on where their last job stopped, a region later."""
        while self._resumed:
            file, item = self._resumed.pop(0)
            self._submit([file], [item])

    def _submit_small(self) -> None:
        if self._small:
            files = [[entry, st, []] for entry, st in self._small]
            items = [(entry["p"], 0, st.st_size) for entry, st in self._small]
            self._small, self._small_bytes = [], 0
            self._submit(files, items)

    def _submit(self, files: list[Any], items: list[Item]) -> None:
        """Send files to a worker, with a region of the arena for their payloads."""
        region = self._take_region()
        full = [(os.path.join(self.workspace, path), start, size) for path, start, size in items]
        future: Future = Future()
        if self._pool is not None:
            future = self._pool.submit(chunk_jobs.run_job, full, region)
        else:
            try:
                future.set_result(chunk_jobs.run_job(full, region))
            except Exception as exc:  # noqa: BLE001 - raised where results are taken
                future.set_exception(exc)
        self._jobs.append(_Job(region, items, files, future))

    def _take_region(self) -> int:
        """A free region; while there is none, take finished jobs' results and send what was
        gathered, so the answers that free regions can come."""
        while True:
            with self._cond:
                if self._free_regions:
                    region = self._free_regions.pop()
                    self._region_refs[region] = 1  # the job's own hold
                    return region
            if self._jobs:
                self._collect(len(self._jobs) - 1)
            self._flush()
            with self._cond:
                if not self._jobs and not self._batches and self._pack.regions:
                    # All answered, and the pack being filled holds regions (a few needed
                    # chunks in each): send it as it is, rather than wait for it to fill.
                    self._seal()
            self._wait(
                lambda: (
                    bool(self._free_regions)
                    or bool(self._jobs)
                    or (not self._batches and bool(self._pack.regions))
                )
            )

    def _collect(self, keep: int) -> None:
        """Take the workers' finished jobs, in order, until at most `keep` are in flight."""
        while self._jobs and (len(self._jobs) > keep or self._jobs[0].future.done()):
            job = self._jobs.popleft()
            try:
                results = job.future.result()
            except OSError as exc:
                raise SnapshotFailed(f"reading {exc.filename or 'a file'}: {exc}") from exc
            for (path, start, size), file, (found, resume) in zip(job.items, job.files, results):
                entry, st, chunks = file
                self._add_chunks(path, start, found, job.region)
                chunks.extend((digest, raw) for digest, raw, _, _, _ in found)
                if resume is None:
                    self._add_file(entry, st, chunks, ask=False)
                else:
                    self._resumed.append((file, (path, resume, size)))
            with self._cond:
                self._release(job.region)

    def _add_chunks(self, path: str, start: int, found: list[Found], region: int) -> None:
        """Put the chunks new to this run to the control plane; keep their payloads."""
        offset = start
        for digest, raw, codec, at, length in found:
            if digest not in self._seen:
                self._seen.add(digest)
                self._located[digest] = (path, offset, raw)
                if codec is not None:
                    with self._cond:
                        self._payloads[digest] = (region, at, length, codec)
                        self._region_refs[region] += 1
                self._asked.append((digest, raw))
                self._asked_bytes += raw
                self.stats["read_bytes"] += raw
                if len(self._asked) >= BATCH_ENTRIES:
                    self._flush()
            offset += raw

    def _add_file(
        self, entry: dict[str, Any], st: os.stat_result, pairs: list[tuple[str, int]], ask: bool
    ) -> None:
        """Record a file whose chunks are all known; `ask`: put them to the control plane here
        (the stat cache's; a worker's were put as they came)."""
        path = entry["p"]
        if ask:
            offset = 0
            for digest, size in pairs:
                if digest not in self._seen:
                    self._seen.add(digest)
                    self._located[digest] = (path, offset, size)
                    self._asked.append((digest, size))
                    self._asked_bytes += size
                offset += size
        entry["s"] = sum(size for _, size in pairs)
        entry["c"] = [digest for digest, _ in pairs]
        self.stats["files"] += 1
        self.stats["bytes"] += entry["s"]
        self.stats["chunks"] += len(pairs)
        self.cache.remember(path, st, pairs)
        self._add(entry)

    def _add(self, entry: dict[str, Any]) -> None:
        self._entries.append(entry)
        if len(self._entries) >= BATCH_ENTRIES:
            self._flush()
            self._wait(lambda: self._held <= self.window)

    def _flush(self) -> None:
        """Send the tree entries and new chunk hashes gathered so far."""
        if not self._entries and not self._asked:
            return
        with self._cond:
            number = self._batch_count
            self._batch_count += 1
            self._batches[number] = [digest for digest, _ in self._asked]
            self.stats["sent_chunks"] += len(self._asked)
        self.wire.send("batch", batch=number, entries=self._entries, chunks=self._asked)
        self._entries, self._asked, self._asked_bytes = [], [], 0
