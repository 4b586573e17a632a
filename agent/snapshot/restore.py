"""`restore`: download packs through presigned GETs, verify every chunk, recreate the tree.

The tree is built in a staging directory inside the target and moved into place only when every
chunk of every file was verified against its SHA-256: a corrupt or missing object fails the
restore loudly and leaves the target as it was. Then the target holds exactly the snapshot
(anything else in it is removed), and the root hash is computed from what is on disk.

A restore cut short (the worker died, the store hiccuped) keeps its staging directory; the next
restore into the target checks what it holds and fetches only the chunks still missing
(agent/snapshot/staging.py). The engine stops as soon as the control plane closes its stdin, so
that the retry does not wait on a restore nobody reads.

Messages in: restore {manifest, packs: [{url, size}]}. Out: hello, progress, restored, error.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Tuple

from agent.snapshot import ENGINE_VERSION, fidelity, ondisk, transfer
from agent.snapshot.codec import Decompressor, decodable
from agent.snapshot.scan import STAGING_DIR, STAGING_LOCK
from agent.snapshot.staging import Leftover, StagingLock, read_at, remove_tree, survey
from agent.snapshot.statcache import StatCache
from agent.snapshot.tree import (
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    LINK,
)
from agent.snapshot.wire import Wire

PROGRESS_SECONDS = 1.0
# How long a restore waits for the engine of a dropped session to notice and exit.
LOCK_WAIT_SECONDS = 60.0
EXIT_ORPHANED = 3
# Fetch the span from a pack's first needed chunk to its last in one GET.
Location = Tuple[int, int, int, int, str]  # pack index, offset, length, raw size, codec


class RestoreFailed(RuntimeError):
    pass


class RestoreEngine:
    def __init__(
        self,
        target: str,
        wire: Wire,
        cache: StatCache,
        *,
        workers: int,
        control_fd: int | None = None,
    ) -> None:
        """`control_fd`: the control plane's end (stdin); the engine exits when it closes."""
        self.target = os.path.abspath(target)
        self.wire = wire
        self.cache = cache
        self.workers = workers
        self.staging = os.path.join(self.target, STAGING_DIR)
        self._staging_lock = StagingLock(os.path.join(self.target, STAGING_LOCK))
        self._control_fd = control_fd
        self._phase = threading.Lock()
        self._moving = False
        self._decompressor = Decompressor()
        self._lock = threading.Lock()
        self._written: dict[str, int] = {}
        self._left: dict[str, int] = {}  # chunk writes a file still waits for
        self._files: dict[str, dict[str, Any]] = {}
        self._targets: dict[str, list[tuple[str, int]]] = {}
        self._as_root = os.geteuid() == 0
        self.stats: dict[str, Any] = {
            "files": 0,
            "bytes": 0,
            "downloaded_bytes": 0,
            "packs": 0,
            "chunks": 0,
            "reused_bytes": 0,  # file content taken from an interrupted attempt's staging
            "reused_pack_bytes": 0,  # pack bytes not fetched thanks to it
        }
        self._last_progress = time.monotonic()
        self.timings: dict[str, float] = {}  # seconds per phase, and summed over fetch threads

    def _spent(self, what: str, since: float) -> float:
        now = time.perf_counter()
        with self._lock:
            self.timings[what] = self.timings.get(what, 0.0) + now - since
        return now

    def run(self) -> int:
        self.wire.send("hello", version=ENGINE_VERSION, mode="restore", codecs=decodable())
        try:
            message = self.wire.receive()
            if message is None or message["t"] != "restore":
                raise RestoreFailed(f"expected the manifest, got {message!r}")
            self._watch_control_plane()
            root = self._restore(message["manifest"], message["packs"])
        except (RestoreFailed, ValueError, KeyError) as exc:
            # The snapshot itself is bad: a retry fails the same way, keep nothing.
            return self._fail(exc, keep_staging=False)
        except (transfer.TransferError, OSError) as exc:
            # Every staged chunk was verified: it serves the retry.
            return self._fail(exc, keep_staging=True)
        finally:
            self._staging_lock.release()
        self.stats["seconds"] = {k: round(v, 3) for k, v in self.timings.items()}
        self.wire.send("restored", root=root, stats=self.stats)
        return 0

    def _fail(self, exc: Exception, *, keep_staging: bool) -> int:
        if not keep_staging and self._staging_lock.held:  # never another engine's staging
            try:
                remove_tree(self.staging)
            except OSError:  # what is left is checked again before any use
                pass
        self._staging_lock.release()  # before answering: the control plane kills us then
        self.wire.send("error", message=f"{type(exc).__name__}: {exc}")
        return 1

    def _watch_control_plane(self) -> None:
        if self._control_fd is not None:
            threading.Thread(target=self._exit_when_orphaned, name="control", daemon=True).start()

    def _exit_when_orphaned(self) -> None:
        """Exit at once when the control plane closes stdin (its worker died, the session
        dropped): the staging stays for the retry, which must not wait for this engine. Once the
        tree is being moved into place, finish instead: that takes moments."""
        assert self._control_fd is not None
        try:  # raw reads: a daemon thread must not hold sys.stdin's lock at exit
            while os.read(self._control_fd, 65536):
                pass
        except OSError:
            pass
        with self._phase:
            if self._moving:
                return
            sys.stderr.write("the control plane went away: stopping, the staging is kept\n")
            sys.stderr.flush()
            os._exit(EXIT_ORPHANED)

    def _restore(self, manifest: dict[str, Any], packs: list[dict[str, Any]]) -> str:
        chunks: dict[str, Location] = {h: tuple(v) for h, v in manifest["chunks"].items()}
        missing_codecs = {loc[4] for loc in chunks.values()} - set(decodable())
        if missing_codecs:
            raise RestoreFailed(
                "this machine cannot decode {} (install zstd or python3-zstandard)".format(
                    ", ".join(sorted(missing_codecs))
                )
            )
        entries = manifest["entries"]
        os.makedirs(self.target, exist_ok=True)
        if not os.access(self.target, os.W_OK | os.X_OK):  # a read-only root, restored before
            os.chmod(self.target, stat.S_IMODE(os.stat(self.target).st_mode) | 0o700)
        self._staging_lock.acquire(LOCK_WAIT_SECONDS)
        files = {e["p"]: e for e in entries if e["k"] == FILE}
        self._files = files
        at = time.perf_counter()
        leftover = self._open_staging(entries, chunks)
        at = self._spent("survey", at)
        self._targets = self._lay_out(entries, chunks, leftover)
        self._copy_found(leftover, chunks)
        for path in leftover.complete:
            self._finish_path(path)
        if leftover.found:
            self.wire.send("progress", stats=self.stats)
        at = self._spent("lay_out", at)
        self._fetch(packs, chunks, self._targets)
        at = self._spent("fetch", at)
        for path, entry in files.items():
            if self._written.get(path, 0) != entry["s"]:
                raise RestoreFailed(f"{path} was not restored completely")
        self._apply_metadata(entries)
        at = self._spent("metadata", at)
        self._move_into_place(entries)
        at = self._spent("move", at)
        root = self._verify_and_cache(files, chunks)
        self._spent("verify", at)
        return root

    def _staged(self, path: str) -> str:
        return self.staging if path == "." else os.path.join(self.staging, path)

    def _open_staging(self, entries: list[dict[str, Any]], chunks: dict[str, Location]) -> Leftover:
        """What an interrupted attempt staged and still holds, or a new staging directory."""
        try:
            st: os.stat_result | None = os.lstat(self.staging)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            remove_tree(self.staging)
            st = None
        if st is None:
            os.mkdir(self.staging, 0o700)
            return Leftover()
        os.chmod(self.staging, 0o700)
        return survey(self.staging, entries, chunks, self.workers, self._on_surveyed)

    def _on_surveyed(self, leftover: Leftover) -> None:
        self.stats["reused_bytes"] = leftover.reused_bytes
        self.stats["reused_pack_bytes"] = leftover.reused_pack_bytes
        if time.monotonic() - self._last_progress >= PROGRESS_SECONDS:
            self._last_progress = time.monotonic()
            self.wire.send("progress", stats=self.stats)

    def _lay_out(
        self, entries: list[dict[str, Any]], chunks: dict[str, Location], leftover: Leftover
    ) -> dict[str, list[tuple[str, int]]]:
        """Create directories, empty files and files of several chunks (sized, to be filled);
        a file of one chunk is created when its chunk arrives. What the staging already holds
        is left as it is. Chunk hash -> [(file, offset)] still to write."""
        targets: dict[str, list[tuple[str, int]]] = {}
        for entry in entries:
            path = entry["p"]
            if path == ".":
                continue
            if entry["k"] == DIR:
                os.makedirs(self._staged(path), 0o700, exist_ok=True)
            elif entry["k"] == FILE:
                if path in leftover.complete:
                    self._written[path] = entry["s"]
                    self._left[path] = 0
                    continue
                in_place = leftover.partial.get(path, set())
                self._written[path] = 0
                self._left[path] = len(entry["c"]) - len(in_place)
                if not in_place and len(entry["c"]) != 1:
                    fd = os.open(self._staged(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    try:
                        os.ftruncate(fd, entry["s"])
                        if not entry["c"]:
                            self._finish_file(fd, entry)
                    finally:
                        os.close(fd)
                offset = 0
                for position, digest in enumerate(entry["c"]):
                    if position in in_place:
                        self._written[path] += chunks[digest][3]
                    else:
                        targets.setdefault(digest, []).append((path, offset))
                    offset += chunks[digest][3]
        return targets

    def _copy_found(self, leftover: Leftover, chunks: dict[str, Location]) -> None:
        """Chunks the staging holds somewhere are copied from there to where else they go."""
        for digest in [d for d in self._targets if d in leftover.found]:
            path, offset = leftover.found[digest]
            fd = os.open(self._staged(path), os.O_RDONLY)
            try:
                content = read_at(fd, offset, chunks[digest][3])
            finally:
                os.close(fd)
            for where, at in self._targets.pop(digest):
                self._write(where, at, content)
                self.stats["reused_bytes"] += len(content)

    def _finish_path(self, path: str) -> None:
        fd = os.open(self._staged(path), os.O_RDONLY)
        try:
            self._finish_file(fd, self._files[path])
        finally:
            os.close(fd)

    def _finish_file(self, fd: int, entry: dict[str, Any]) -> None:
        """Owner, xattrs, mode and times of a file whose content is all written (chown first: it
        clears setuid bits; xattrs before the mode, which may forbid writing them)."""
        if self._as_root:
            os.fchown(fd, entry["u"], entry["g"])
        fidelity.write_xattrs(fd, entry.get("x"))
        os.fchmod(fd, entry["m"])
        os.utime(fd, ns=(entry["t"], entry["t"]))

    def _write(self, path: str, offset: int, content: bytes) -> None:
        entry = self._files[path]
        holes = entry.get("z")
        if len(entry["c"]) == 1:  # the whole file: create, write, finish in one go
            fd = os.open(self._staged(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            if holes:
                os.ftruncate(fd, entry["s"])
        else:
            fd = os.open(self._staged(path), os.O_WRONLY)
        try:
            if holes:
                ondisk.write_around_holes(fd, offset, content, holes)
            else:
                ondisk.write_all(fd, offset, memoryview(content))
            with self._lock:
                self._written[path] += len(content)
                self._left[path] -= 1
                last = self._left[path] == 0
            if last:
                self._finish_file(fd, entry)
        finally:
            os.close(fd)

    def _fetch(
        self,
        packs: list[dict[str, Any]],
        chunks: dict[str, Location],
        targets: dict[str, list[tuple[str, int]]],
    ) -> None:
        by_pack: dict[int, list[tuple[str, Location]]] = {}
        for digest in targets:
            location = chunks[digest]
            by_pack.setdefault(location[0], []).append((digest, location))
        with ThreadPoolExecutor(self.workers, thread_name_prefix="fetch") as pool:
            jobs = [
                pool.submit(self._fetch_pack, packs[index], sorted(needed, key=lambda c: c[1][1]))
                for index, needed in by_pack.items()
            ]
            for job in jobs:
                job.result()  # the first failure ends the restore

    def _fetch_pack(
        self,
        pack: dict[str, Any],
        needed: list[tuple[str, Location]],
    ) -> None:
        start = needed[0][1][1]
        end = max(location[1] + location[2] for _, location in needed)
        whole = start == 0 and end == pack["size"]
        at = time.perf_counter()
        data = transfer.get(pack["url"], None if whole else (start, end))
        at = self._spent("get", at)
        items = [
            (loc[4], data[loc[1] - start : loc[1] - start + loc[2]], loc[3]) for _, loc in needed
        ]
        try:
            plain = self._decompressor.many(items)
        except Exception as exc:
            raise RestoreFailed(
                "pack {} is corrupt: {}".format(pack["url"].split("?", 1)[0], exc)
            ) from None
        at = self._spent("decode", at)
        for (digest, _), content in zip(needed, plain):
            if hashlib.sha256(content).hexdigest() != digest:
                raise RestoreFailed(
                    "hash mismatch for chunk {} in pack {}".format(
                        digest, pack["url"].split("?", 1)[0]
                    )
                )
        at = self._spent("hash", at)
        for (digest, _), content in zip(needed, plain):
            for path, offset in self._targets[digest]:
                self._write(path, offset, content)
        self._spent("write", at)
        with self._lock:
            self.stats["downloaded_bytes"] += len(data)
            self.stats["packs"] += 1
            self.stats["chunks"] += len(needed)
            if time.monotonic() - self._last_progress >= PROGRESS_SECONDS:
                self._last_progress = time.monotonic()
                self.wire.send("progress", stats=self.stats)

    def _apply_metadata(self, entries: list[dict[str, Any]]) -> None:
        """Symlinks, hard links, named pipes and directories (files got theirs when their last
        chunk was written)."""
        as_root = self._as_root
        for entry in entries:
            kind = entry["k"]
            if kind not in (LINK, HARDLINK, FIFO):
                continue
            path = self._staged(entry["p"])
            try:
                ondisk.make(entry, path, self._staged)
            except FileExistsError:  # left by an interrupted attempt
                remove_tree(path)
                ondisk.make(entry, path, self._staged)
            if kind == FIFO:
                self._own_and_time(path, entry, as_root)
                os.chmod(path, entry["m"])
            elif kind == LINK:
                self._own_and_time(path, entry, as_root)
        # Deepest first: a read-only directory must get its mode after its children are in.
        for entry in sorted(
            (e for e in entries if e["k"] == DIR), key=lambda e: -e["p"].count("/")
        ):
            if entry["p"] == ".":
                continue
            path = self._staged(entry["p"])
            self._own_and_time(path, entry, as_root)
            fidelity.write_xattrs(path, entry.get("x"))
            os.chmod(path, entry["m"])

    @staticmethod
    def _own_and_time(path: str, entry: dict[str, Any], as_root: bool) -> None:
        if as_root:
            os.lchown(path, entry["u"], entry["g"])
        follow = entry["k"] != LINK
        if follow or os.utime in os.supports_follow_symlinks:
            os.utime(path, ns=(entry["t"], entry["t"]), follow_symlinks=follow)

    def _move_into_place(self, entries: list[dict[str, Any]]) -> None:
        with self._phase:  # from here on, finish even if the control plane goes
            self._moving = True
        for name in os.listdir(self.target):
            if name not in (STAGING_DIR, STAGING_LOCK):
                remove_tree(os.path.join(self.target, name))
        top = {e["p"]: e for e in entries if "/" not in e["p"] and e["p"] != "."}
        for name in os.listdir(self.staging):
            os.rename(os.path.join(self.staging, name), os.path.join(self.target, name))
        os.rmdir(self.staging)
        self._staging_lock.release()  # while the target is still writable: it may not stay so
        as_root = os.geteuid() == 0
        for name, entry in top.items():
            if entry["k"] == DIR:  # a rename may touch a directory's times
                self._own_and_time(os.path.join(self.target, name), entry, as_root)
        root = next((e for e in entries if e["p"] == "."), None)
        if root is not None:
            self._own_and_time(self.target, root, as_root)
            fidelity.write_xattrs(self.target, root.get("x"), replace=True)
            os.chmod(self.target, root["m"])

    def _verify_and_cache(
        self, files: dict[str, dict[str, Any]], chunks: dict[str, Location]
    ) -> str:
        """The root hash of what is now on disk; file contents are the chunks verified above."""
        return ondisk.tree_hash(self.target, files, chunks, self.cache, self.stats)
