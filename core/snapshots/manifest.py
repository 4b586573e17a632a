"""Manifests: the tree (paths, kinds, modes, sizes, times, owners, symlink targets, chunk lists,
hard links, holes, `user.*` xattrs, named pipes), where every chunk lives, and the root hash over
the tree. Written by the control plane only, from what the engine reported, after checking the
tree is well formed.

Format 2 added hard links ("h" entries), named pipes ("p"), holes ("z") and xattrs ("x"); an
entry of format 1 is an entry of format 2 that has none of them, so both are read (a hibernated
machine's snapshot may be its only copy: tests/snapshots/test_legacy_store.py restores one)."""

from __future__ import annotations

import gc
import gzip
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agent.snapshot.tree import DIR, FILE, HARDLINK, KINDS, from_manifest, hash_lines, root_hash
from core.snapshots.index import ChunkLocation, PackInfo

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class ManifestError(ValueError):
    pass


class TreeCheck:
    """Checks a tree as its entries arrive, so the commit only checks what needs the whole tree:
    every path once and clean as it comes; at the end, every parent a directory, every file
    the sum of its chunks and every hard link another name of a file."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}

    def add(self, entries: list[dict[str, Any]]) -> None:
        kinds = self.kinds
        for entry in entries:
            path, kind = entry.get("p"), entry.get("k")
            if not isinstance(path, str) or kind not in KINDS:
                raise ManifestError(f"malformed entry {entry!r:.200}")
            if path in kinds:
                raise ManifestError(f"{path} appears twice")
            if path != "." and (
                path.startswith("/") or ".." in path.split("/") or "" in path.split("/")
            ):
                raise ManifestError(f"{path!r} is not a clean relative path")
            kinds[path] = kind

    def finish(self, entries: list[dict[str, Any]], sizes: Mapping[str, int]) -> None:
        kinds = self.kinds
        if kinds.get(".") != DIR:
            raise ManifestError("the tree has no root directory")
        for entry in entries:
            path = entry["p"]
            if path != ".":
                parent = path.rsplit("/", 1)[0] if "/" in path else "."
                if kinds.get(parent) != DIR:
                    raise ManifestError(f"{path}: its parent is not a directory in the tree")
            if entry["k"] == HARDLINK and kinds.get(str(entry.get("l"))) != FILE:
                raise ManifestError(f"{path}: a hard link to {entry.get('l')!r}, not a file")
            if entry["k"] == FILE:
                total = 0
                for digest in entry["c"]:
                    if digest not in sizes:
                        raise ManifestError(f"{path}: chunk {digest} is in no pack")
                    total += sizes[digest]
                if total != entry["s"]:
                    raise ManifestError(f"{path}: chunks add up to {total} bytes, not {entry['s']}")


def check_tree(entries: list[dict[str, Any]], sizes: Mapping[str, int]) -> None:
    """Every path once, every parent a directory, every file the sum of its chunks."""
    check = TreeCheck()
    check.add(entries)
    check.finish(entries, sizes)


@dataclass(frozen=True)
class Built:
    """A manifest as stored (`data`), with what the commit records of it."""

    root_hash: str
    packs: list[dict[str, Any]]  # {"id", "key", "size"} of every pack it references
    data: bytes


class _CollectorPause:
    """Building a manifest allocates a container per entry and chunk: with the collector on, its
    full passes over the process's heap cost more than the building itself. Off while any
    build runs (builds of several snapshots may overlap in one worker)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = True

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._was_enabled:
                    gc.enable()


_collection_paused = _CollectorPause()


def build(
    *,
    owner_id: str,
    machine_id: str,
    entries: list[dict[str, Any]],
    locations: Mapping[str, ChunkLocation],
    packs: Mapping[str, PackInfo],
    lines: list[bytes] | None = None,
    checked: TreeCheck | None = None,
) -> Built:
    """The stored manifest of a finished snapshot run; raises ManifestError when it does not
    hold. Nothing in it names the snapshot or the time (the database does): an unchanged
    workspace gives the same bytes, stored once. `lines`: the entries' root-hash lines, and
    `checked`: the entries checked so far, when the caller worked them out as entries came.

    Stored form (gzipped JSON): entries in path order (the root first, every directory before
    what is in it) with each file's chunks as numbers into `chunks`, the rows
    [hash, pack number, offset, length, raw size, codec] sorted by hash."""
    with _collection_paused():
        if checked is None:
            checked = TreeCheck()
            checked.add(entries)
        checked.finish(entries, {digest: loc.raw_size for digest, loc in locations.items()})
        ordered = sorted(entries, key=lambda entry: (entry["p"] != ".", entry["p"]))
        used = sorted({digest for entry in ordered if entry["k"] == FILE for digest in entry["c"]})
        pack_ids = sorted({locations[digest].pack_id for digest in used})
        pack_number = {pack_id: number for number, pack_id in enumerate(pack_ids)}
        chunk_number = {digest: number for number, digest in enumerate(used)}
        find = chunk_number.__getitem__
        root = hash_lines(lines) if lines is not None else root_hash(map(from_manifest, ordered))
        pack_rows = [{"id": p, "key": packs[p].key, "size": packs[p].size} for p in pack_ids]
        stored = {
            "version": FORMAT_VERSION,
            "owner_id": owner_id,
            "machine_id": machine_id,
            "root_hash": root,
            "entries": [
                {**e, "c": list(map(find, e["c"]))} if e["k"] == FILE else e for e in ordered
            ],
            "packs": pack_rows,
            "chunks": [
                [digest, pack_number[loc.pack_id], loc.offset, loc.length, loc.raw_size, loc.codec]
                for digest in used
                for loc in (locations[digest],)
            ],
        }
        body = json.dumps(stored, separators=(",", ":")).encode()
    # No timestamp in the gzip header: the same tree gives the same bytes (and object).
    return Built(root, pack_rows, gzip.compress(body, compresslevel=1, mtime=0))


def _expand(stored: dict[str, Any]) -> dict[str, Any]:
    digests = [row[0] for row in stored["chunks"]]
    manifest = dict(stored)
    manifest["chunks"] = {row[0]: row[1:] for row in stored["chunks"]}
    manifest["entries"] = [
        {**e, "c": [digests[n] for n in e["c"]]} if e["k"] == FILE else e for e in stored["entries"]
    ]
    return manifest


def decode(data: bytes, expected_root: str) -> dict[str, Any]:
    """The stored manifest, checked against the root hash the database recorded at commit."""
    try:
        stored = json.loads(gzip.decompress(data))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"the manifest is unreadable: {exc}") from exc
    if stored.get("version") not in READABLE_VERSIONS:
        raise ManifestError(f"unknown manifest version {stored.get('version')!r}")
    try:
        manifest = _expand(stored)
    except (KeyError, IndexError, TypeError) as exc:
        raise ManifestError(f"the manifest is malformed: {exc}") from exc
    actual = root_hash(from_manifest(entry) for entry in manifest["entries"])
    if actual != expected_root or manifest.get("root_hash") != expected_root:
        raise ManifestError("the manifest does not match the snapshot's root hash")
    return manifest
