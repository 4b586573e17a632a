"""What the engine learnt about files last time: (size, mtime, ctime, inode) → chunk hashes.

A file whose four values are unchanged is not read again; its chunks are taken from here (the
control plane still checks the store has them, and asks for the data when it does not). ctime
cannot be set by programs, so a rewrite that restores the mtime is still noticed. The cache
lives outside the workspace and is rewritten after every snapshot and restore.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Tuple

# path -> [size, mtime_ns, ctime_ns, inode, [[hash, size], ...]]
Record = list
Chunk = Tuple[str, int]


def default_location(workspace: str) -> str:
    base = os.environ.get("DUMONT_SNAPSHOT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "dumont-snapshot",
    )
    key = hashlib.sha256(os.path.realpath(workspace).encode("utf-8", "surrogateescape"))
    return os.path.join(base, key.hexdigest()[:24] + ".json")


def stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class StatCache:
    def __init__(self, location: str | None) -> None:
        self.location = location
        self._old: dict[str, Record] = {}
        self._new: dict[str, Record] = {}
        if location and os.path.exists(location):
            try:
                with open(location, encoding="utf-8", errors="surrogateescape") as handle:
                    loaded = json.load(handle)
                if loaded.get("version") == 1:
                    self._old = loaded["files"]
            except (OSError, ValueError, KeyError, AttributeError):
                self._old = {}  # a damaged cache only costs a full read

    def lookup(self, path: str, st: os.stat_result) -> list[Chunk] | None:
        record = self._old.get(path)
        if record is None or tuple(record[:4]) != stamp(st):
            return None
        return [(chunk[0], chunk[1]) for chunk in record[4]]

    def known_chunks(self) -> set[str]:
        """Every chunk hash the last run saw: most of them are in the store already."""
        return {chunk[0] for record in self._old.values() for chunk in record[4]}

    def remember(self, path: str, st: os.stat_result, chunks: list[Chunk]) -> None:
        self._new[path] = list(stamp(st)) + [[list(chunk) for chunk in chunks]]

    def save(self) -> None:
        if not self.location:
            return
        os.makedirs(os.path.dirname(self.location), exist_ok=True)
        temporary = f"{self.location}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8", errors="surrogateescape") as handle:
            json.dump({"version": 1, "files": self._new}, handle, separators=(",", ":"))
        os.replace(temporary, self.location)
