"""`create`: walk, chunk and hash the workspace, upload what the store lacks, in one pass.

The main thread walks the tree and sends it in batches. Files of at least MIN_CHUNK are cut and
hashed by a pool of processes (content-defined chunking holds the GIL, so threads would run it
on one core); small files are read and hashed in the main thread. The reader thread takes the
control plane's answers (which chunks it needs, presigned URLs); a thread pool reads each
needed chunk again (from the page cache), checks its hash, compresses it into the current pack,
and another pool uploads sealed packs. Memory is bounded: the walk and the compressors wait
while more than `window` bytes are held in flight.

Messages out: hello, batch, progress, pack, uploaded, done, error.
Messages in: need (per batch), put (per pack), committed, abort.
"""

from __future__ import annotations

import collections
import hashlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from agent.snapshot import ENGINE_VERSION, chunker, transfer
from agent.snapshot.codec import Compressor
from agent.snapshot.scan import walk
from agent.snapshot.statcache import StatCache
from agent.snapshot.tree import DIR, FILE, LINK
from agent.snapshot.wire import Message, Wire

BATCH_ENTRIES = 2000
BATCH_BYTES = 32 * 1024 * 1024
PROGRESS_SECONDS = 1.0


class SnapshotFailed(RuntimeError):
    pass


def chunk_file(path: str) -> list[tuple[str, int]]:
    """(hash, size) of each chunk of a file; runs in a worker process."""
    found = []
    with open(path, "rb", buffering=0) as handle:
        for data in chunker.chunks(handle):
            found.append((hashlib.sha256(data).hexdigest(), len(data)))
    return found


def _ready() -> int:
    return os.getpid()


def _worker_init() -> None:
    """A chunking process holds none of the session's pipes (so the control plane sees the
    engine end when its main process does) and dies with its parent."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipes are closed all the same
        pass


class _Pack:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.table: list[list[Any]] = []  # [hash, offset, length, raw size, codec]
        self.size = 0

    def add(self, digest: str, codec: str, payload: bytes, raw_size: int) -> None:
        self.table.append([digest, self.size, len(payload), raw_size, codec])
        self.parts.append(payload)
        self.size += len(payload)


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
        # Forked now, before any thread exists: forking a threaded process is unsafe.
        self._chunk_pool = None
        if workers > 1:
            context = multiprocessing.get_context("fork")
            self._chunk_pool = ProcessPoolExecutor(
                workers, mp_context=context, initializer=_worker_init
            )
            for job in [self._chunk_pool.submit(_ready) for _ in range(workers)]:
                job.result()
        self._chunking: collections.deque[tuple[dict[str, Any], os.stat_result, Future]] = (
            collections.deque()
        )
        self._chunk_ahead = 4 * workers
        self._compress_pool = ThreadPoolExecutor(workers, thread_name_prefix="compress")
        self._upload_pool = ThreadPoolExecutor(uploaders, thread_name_prefix="upload")
        self._cond = threading.Condition()
        self._held = 0  # bytes read or packed and not yet answered, compressed or uploaded
        self._pending: dict[str, bytes] = {}  # small files' data waiting for the "need" answer
        self._located: dict[str, tuple[str, int, int]] = {}  # hash -> (path, offset, size)
        self._batches: dict[int, list[str]] = {}
        self._batch_count = 0
        self._seen: set = set()  # chunk hashes already put to the control plane
        self._entries: list[dict[str, Any]] = []
        self._asked: list[tuple[str, int]] = []
        self._asked_bytes = 0
        self._compressing = 0
        self._pack = _Pack()
        self._sealed: dict[int, bytes] = {}
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
        asked = self._batches.pop(message["batch"])
        needed = set(message["chunks"])
        with self._cond:
            for index, digest in enumerate(asked):
                data = self._pending.pop(digest, None)
                if index in needed:
                    self._compressing += 1
                    self._compress_pool.submit(self._compress, digest, data)
                elif data is not None:
                    self._held -= len(data)
            self.stats["needed_chunks"] += len(needed)
            self._cond.notify_all()

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
            body = self._sealed.pop(message["pack"])
        self._upload_pool.submit(self._upload, message["pack"], message["url"], body)

    # --- compress, pack, upload (pools) ---------------------------------------------------

    def _compress(self, digest: str, data: bytes | None) -> None:
        try:
            if data is None:
                size = self._located[digest][2]
                self._wait(lambda: self._held + size <= self.window)
                data = self._read_chunk(digest)
                with self._cond:
                    self._held += len(data)
            codec, payload = self.compressor.compress(data)
            with self._cond:
                self._held += len(payload) - len(data)
                self._pack.add(digest, codec, payload, len(data))
                self.stats["packed_raw_bytes"] += len(data)
                if self._pack.size >= self.pack_size:
                    self._seal()
                self._compressing -= 1
                self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001
            self._fail(f"compressing a chunk: {exc}")

    def _seal(self) -> None:
        """Close the current pack and ask for its URL (lock held)."""
        pack, self._pack = self._pack, _Pack()
        number = self._packs_sealed
        self._packs_sealed += 1
        self._sealed[number] = b"".join(pack.parts)
        self.wire.send("pack", pack=number, size=pack.size, chunks=pack.table)

    def _upload(self, number: int, url: str, body: bytes) -> None:
        try:
            transfer.put(url, body)
        except Exception as exc:  # noqa: BLE001
            self._fail(f"uploading pack {number}: {exc}")
            return
        # Told before it counts as uploaded: otherwise the main thread could send "done" ahead
        # of this message and the control plane would commit without this pack's chunks.
        self.wire.send("uploaded", pack=number, size=len(body))
        with self._cond:
            self._held -= len(body)
            self._packs_uploaded += 1
            self.stats["uploaded_bytes"] += len(body)
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
            self._wait(lambda: self._packs_uploaded == self._packs_sealed)
            self.wire.send("done", stats=self.stats)
            self._wait(lambda: self._finished is not None)
            if self._finished != "committed":
                raise SnapshotFailed("the control plane aborted the snapshot")
            self.cache.save()
            return 0
        except (SnapshotFailed, OSError) as exc:
            self.wire.send("error", message=str(exc))
            return 1
        finally:
            if self._chunk_pool is not None:
                self._chunk_pool.shutdown(wait=False)
            self._compress_pool.shutdown(wait=False)
            self._upload_pool.shutdown(wait=False)

    def _walk(self) -> None:
        last_progress = time.monotonic()
        for path, kind, st in walk(self.workspace):
            entry: dict[str, Any] = {"p": path, "k": kind, "m": st.st_mode & 0o7777}
            entry.update({"t": st.st_mtime_ns, "u": st.st_uid, "g": st.st_gid})
            if kind == DIR:
                self.stats["dirs"] += 1
            elif kind == LINK:
                entry["m"] = 0
                entry["l"] = os.readlink(os.path.join(self.workspace, path))
                self.stats["links"] += 1
            elif kind == FILE:
                cached = self.cache.lookup(path, st)
                if cached is not None:
                    self._add_file(entry, st, cached, None)
                elif st.st_size >= chunker.MIN_CHUNK and self._chunk_pool is not None:
                    full = os.path.join(self.workspace, path)
                    self._chunking.append((entry, st, self._chunk_pool.submit(chunk_file, full)))
                    self._collect_chunked(self._chunk_ahead)
                else:
                    self._add_file(entry, st, *self._read_small(path))
                continue  # _add_file records the entry
            self._add(entry)
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                self.wire.send("progress", stats=self.stats)
        self._collect_chunked(0)
        self._flush()
        self.wire.send("scanned", stats=self.stats)

    def _read_small(self, path: str) -> tuple[list[tuple[str, int]], dict[str, bytes]]:
        """Chunks of a file read here (small ones; all of them without a process pool)."""
        found: list[tuple[str, int]] = []
        data_of: dict[str, bytes] = {}
        with open(os.path.join(self.workspace, path), "rb", buffering=0) as handle:
            for data in chunker.chunks(handle):
                digest = hashlib.sha256(data).hexdigest()
                found.append((digest, len(data)))
                data_of[digest] = data
        return found, data_of

    def _collect_chunked(self, keep: int) -> None:
        """Take the pool's finished files, in order, until at most `keep` are in flight."""
        while self._chunking and (len(self._chunking) > keep or self._chunking[0][2].done()):
            entry, st, job = self._chunking.popleft()
            try:
                chunks = job.result()
            except OSError as exc:
                raise SnapshotFailed(f"reading {entry['p']}: {exc}") from exc
            self._add_file(entry, st, chunks, None)

    def _add_file(
        self,
        entry: dict[str, Any],
        st: os.stat_result,
        chunks: list[tuple[str, int]],
        data_of: dict[str, bytes] | None,
    ) -> None:
        path = entry["p"]
        entry["s"] = sum(size for _, size in chunks)
        entry["c"] = [digest for digest, _ in chunks]
        self.stats["files"] += 1
        self.stats["bytes"] += entry["s"]
        self.stats["chunks"] += len(chunks)
        if data_of is not None:
            self.stats["read_bytes"] += entry["s"]
        self.cache.remember(path, st, chunks)
        offset = 0
        for digest, size in chunks:
            if digest not in self._seen:
                self._located[digest] = (path, offset, size)
                self._ask(digest, size, data_of.get(digest) if data_of else None)
            offset += size
        self._add(entry)

    def _add(self, entry: dict[str, Any]) -> None:
        self._entries.append(entry)
        if len(self._entries) >= BATCH_ENTRIES:
            self._flush()
            self._wait(lambda: self._held <= self.window)

    def _flush(self) -> None:
        """Send the tree entries and new chunk hashes gathered so far."""
        with self._cond:
            number = self._batch_count
            self._batch_count += 1
            self._batches[number] = [digest for digest, _ in self._asked]
            self.stats["sent_chunks"] += len(self._asked)
        self.wire.send("batch", batch=number, entries=self._entries, chunks=self._asked)
        self._entries, self._asked, self._asked_bytes = [], [], 0

    def _ask(self, digest: str, size: int, data: bytes | None) -> None:
        """Put a chunk new to this run to the control plane (data None: read it if needed)."""
        self._seen.add(digest)
        self._asked.append((digest, size))
        self._asked_bytes += size
        if data is not None:
            with self._cond:
                self._pending[digest] = data
                self._held += size
        if self._asked_bytes >= BATCH_BYTES:
            self._flush()
            self._wait(lambda: self._held <= self.window)
