"""The restore's staging directory, kept across attempts: a restore interrupted by a worker restart
leaves it behind, and the next restore into the same target takes up what it holds.

Nothing in it is trusted: every chunk a file should hold is read back and hashed at its offset
(reading local data is far cheaper than downloading it again), so partial writes, truncated or
altered files need no journal. What is not in the manifest, or not of its kind and size, goes.

One engine at a time fills it: an exclusive flock on a lock file beside it. The engine of a
dropped session may live on for a moment, so the next one waits for it, within a bound.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from agent.snapshot.scan import relative
from agent.snapshot.tree import DIR, FILE

LOCK_POLL_SECONDS = 0.2
Location = Sequence[Any]  # pack index, offset, length, raw size, codec


@dataclass
class Leftover:
    """What an earlier attempt staged that checked out."""

    complete: set[str] = field(default_factory=set)  # files with every chunk in place
    partial: dict[str, set[int]] = field(default_factory=dict)  # file -> chunk positions in place
    found: dict[str, tuple[str, int]] = field(default_factory=dict)  # chunk -> (file, offset)
    reused_bytes: int = 0  # file content in place
    reused_pack_bytes: int = 0  # pack bytes of the chunks found: none is fetched again


class StagingLock:
    """An exclusive flock on `path`, removed on release. A waiter may lock a file the holder
    has just removed, so it checks the path still names what it locked before it counts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait_seconds: float) -> None:
        deadline = time.monotonic() + wait_seconds
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise OSError(
                        errno.EBUSY,
                        f"another restore into {os.path.dirname(self.path)} is still running",
                    ) from None
                time.sleep(LOCK_POLL_SECONDS)
                continue
            if _same_file(fd, self.path):
                self._fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:  # a read-only target: the file stays, harmless (snapshots skip it)
            pass
        os.close(self._fd)
        self._fd = None


def _same_file(fd: int, path: str) -> bool:
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def remove_tree(path: str) -> None:
    """Remove a file, link or directory tree, also through directories made read-only (by an
    earlier attempt's metadata step, or by the user)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
        os.chmod(path, 0o700)
    with os.scandir(path) as listing:
        names = [item.name for item in listing]
    for name in names:
        remove_tree(os.path.join(path, name))
    os.rmdir(path)


def survey(
    staging: str,
    entries: list[dict[str, Any]],
    chunks: Mapping[str, Location],
    workers: int,
    on_file: Callable[[Leftover], None],
) -> Leftover:
    """Prune `staging` to what the manifest wants and check each file's chunks in place.
    Directories are left writable (0o700) to be filled; files to keep are left 0o600 and get
    their metadata only when complete; files with no chunk in place are removed."""
    files = {e["p"]: e for e in entries if e["k"] == FILE}
    kinds = {e["p"]: e["k"] for e in entries}
    candidates = _prune(staging, kinds, files)
    leftover = Leftover()

    def check(path: str) -> list[bool]:
        return _check(os.path.join(staging, path), files[path]["c"], chunks)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="survey") as pool:
        for path, in_place in zip(candidates, pool.map(check, candidates)):
            if all(in_place):
                leftover.complete.add(path)
            elif any(in_place):
                leftover.partial[path] = {i for i, ok in enumerate(in_place) if ok}
            offset = 0
            for ok, digest in zip(in_place, files[path]["c"]):
                size = int(chunks[digest][3])
                if ok:
                    leftover.reused_bytes += size
                    if digest not in leftover.found:
                        leftover.found[digest] = (path, offset)
                        leftover.reused_pack_bytes += int(chunks[digest][2])
                offset += size
            on_file(leftover)
    return leftover


def _prune(staging: str, kinds: dict[str, str], files: dict[str, dict[str, Any]]) -> list[str]:
    """Remove what cannot serve; the files of the right size are candidates."""
    candidates: list[str] = []
    stack = ["."]
    while stack:
        parent = stack.pop()
        with os.scandir(staging if parent == "." else os.path.join(staging, parent)) as listing:
            found = list(listing)
        for item in found:
            path = relative(parent, item.name)
            st = item.stat(follow_symlinks=False)
            kind = kinds.get(path)
            if stat.S_ISDIR(st.st_mode) and kind == DIR:
                if stat.S_IMODE(st.st_mode) != 0o700:
                    os.chmod(item.path, 0o700)
                stack.append(path)
            elif stat.S_ISREG(st.st_mode) and kind == FILE and st.st_size == files[path]["s"]:
                candidates.append(path)
            else:  # symlinks too: recreated with the metadata
                remove_tree(item.path)
    return candidates


def _check(full: str, digests: list[str], chunks: Mapping[str, Location]) -> list[bool]:
    """Which of the file's chunks are in place; the file goes when none is."""
    os.chmod(full, 0o600)  # readable and writable for us, whatever mode it was finished with
    in_place: list[bool] = []
    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        offset = 0
        for digest in digests:
            size = int(chunks[digest][3])
            in_place.append(hashlib.sha256(read_at(fd, offset, size)).hexdigest() == digest)
            offset += size
    finally:
        os.close(fd)
    if digests and not any(in_place):
        os.unlink(full)
    return in_place


def read_at(fd: int, offset: int, size: int) -> bytes:
    """`size` bytes from `offset`, fewer only at the end of the file."""
    parts: list[bytes] = []
    done = 0
    while done < size:
        part = os.pread(fd, size - done, offset + done)
        if not part:
            break
        parts.append(part)
        done += len(part)
    return b"".join(parts)
