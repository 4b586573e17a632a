"""Manifests: the tree (paths, kinds, modes, sizes, times, owners, symlink targets, chunk lists),
where every chunk lives, and the root hash over the tree. Written by the control plane only,
from what the engine reported, after checking the tree is well formed."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from typing import Any

from agent.snapshot.tree import DIR, FILE, LINK, from_manifest, hash_lines, root_hash
from core.snapshots.index import ChunkLocation, PackInfo

FORMAT_VERSION = 1


class ManifestError(ValueError):
    pass


def check_tree(entries: list[dict[str, Any]], sizes: Mapping[str, int]) -> None:
    """Every path once, every parent a directory, every file the sum of its chunks."""
    kinds: dict[str, str] = {}
    for entry in entries:
        path, kind = entry.get("p"), entry.get("k")
        if not isinstance(path, str) or kind not in (DIR, FILE, LINK):
            raise ManifestError(f"malformed entry {entry!r:.200}")
        if path in kinds:
            raise ManifestError(f"{path} appears twice")
        if path != "." and (
            path.startswith("/") or ".." in path.split("/") or "" in path.split("/")
        ):
            raise ManifestError(f"{path!r} is not a clean relative path")
        kinds[path] = kind
    if kinds.get(".") != DIR:
        raise ManifestError("the tree has no root directory")
    for entry in entries:
        path = entry["p"]
        if path != ".":
            parent = path.rsplit("/", 1)[0] if "/" in path else "."
            if kinds.get(parent) != DIR:
                raise ManifestError(f"{path}: its parent is not a directory in the tree")
        if entry["k"] == FILE:
            total = 0
            for digest in entry["c"]:
                if digest not in sizes:
                    raise ManifestError(f"{path}: chunk {digest} is in no pack")
                total += sizes[digest]
            if total != entry["s"]:
                raise ManifestError(f"{path}: chunks add up to {total} bytes, not {entry['s']}")


def build(
    *,
    owner_id: str,
    machine_id: str,
    entries: list[dict[str, Any]],
    locations: Mapping[str, ChunkLocation],
    packs: Mapping[str, PackInfo],
    lines: list[bytes] | None = None,
) -> dict[str, Any]:
    """The manifest of a finished snapshot run; raises ManifestError when it does not hold.
    Nothing in it names the snapshot or the time (the database does): an unchanged workspace
    gives the same manifest, stored once. `lines`: the entries' root-hash lines, when the
    caller worked them out as the entries came."""
    check_tree(entries, {digest: loc.raw_size for digest, loc in locations.items()})
    # In path order (the root first, every directory before what is in it), whatever order
    # the engine found them in.
    entries = sorted(entries, key=lambda entry: (entry["p"] != ".", entry["p"]))
    used = {digest for entry in entries if entry["k"] == FILE for digest in entry["c"]}
    pack_ids = sorted({locations[digest].pack_id for digest in used})
    index = {pack_id: number for number, pack_id in enumerate(pack_ids)}
    root = hash_lines(lines) if lines is not None else root_hash(map(from_manifest, entries))
    return {
        "version": FORMAT_VERSION,
        "owner_id": owner_id,
        "machine_id": machine_id,
        "root_hash": root,
        "entries": entries,
        "packs": [{"id": p, "key": packs[p].key, "size": packs[p].size} for p in pack_ids],
        "chunks": {
            digest: [index[pack_id], offset, length, raw_size, codec]
            for digest in sorted(used)
            for pack_id, offset, length, raw_size, codec in (locations[digest],)
        },
    }


def encode(manifest: dict[str, Any]) -> bytes:
    """Gzipped JSON, each chunk hash written once: files list their chunks by number."""
    digests = list(manifest["chunks"])
    number = {digest: n for n, digest in enumerate(digests)}
    stored = dict(manifest)
    find = number.__getitem__
    stored["entries"] = [
        {**e, "c": list(map(find, e["c"]))} if e["k"] == FILE else e for e in manifest["entries"]
    ]
    stored["chunks"] = [[digest, *manifest["chunks"][digest]] for digest in digests]
    # No timestamp in the gzip header: the same tree gives the same bytes (and object).
    body = json.dumps(stored, separators=(",", ":")).encode()
    return gzip.compress(body, compresslevel=1, mtime=0)


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
    if stored.get("version") != FORMAT_VERSION:
        raise ManifestError(f"unknown manifest version {stored.get('version')!r}")
    try:
        manifest = _expand(stored)
    except (KeyError, IndexError, TypeError) as exc:
        raise ManifestError(f"the manifest is malformed: {exc}") from exc
    actual = root_hash(from_manifest(entry) for entry in manifest["entries"])
    if actual != expected_root or manifest.get("root_hash") != expected_root:
        raise ManifestError("the manifest does not match the snapshot's root hash")
    return manifest
