"""The root hash of a workspace tree: the one definition both the engine and the control plane
use, so a restore can prove it recreated exactly what the manifest describes.

An entry is (path, kind, mode, size, ref, xattrs): kind "d", "f", "l" (symlink), "h" (another
name of a file earlier in the walk: a hard link) or "p" (a named pipe); ref is the file's content
digest (over its chunk hashes), the symlink's target or the hard link's first name; xattrs the
`user.*` extended attributes. Timestamps, owners and holes are restored but not hashed: they are
not the workspace's content. An entry without xattrs hashes as it did before they were kept, so
every older snapshot keeps its root hash.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterable, NamedTuple

DIR = "d"
FILE = "f"
LINK = "l"
HARDLINK = "h"
FIFO = "p"
KINDS = (DIR, FILE, LINK, HARDLINK, FIFO)


class TreeEntry(NamedTuple):
    path: str  # relative, "/"-separated, "." for the root; undecodable bytes surrogate-escaped
    kind: str
    mode: int  # permission bits with setuid/setgid/sticky; 0 for symlinks
    size: int
    ref: str
    xattrs: str = ""  # canonical form of {name: hex value}, see xattr_text


def xattr_text(xattrs: dict[str, str] | None) -> str:
    """{name: hex value} as the root hash sees it: sorted, NUL-separated."""
    if not xattrs:
        return ""
    return "".join(f"{name}\0{value}\0" for name, value in sorted(xattrs.items()))


def content_digest(chunk_hashes: Iterable[str]) -> str:
    """A file's digest: SHA-256 over its chunks' SHA-256 digests, in order."""
    digest = hashlib.sha256()
    for chunk in chunk_hashes:
        digest.update(bytes.fromhex(chunk))
    return digest.hexdigest()


def line(entry: TreeEntry) -> bytes:
    """An entry's contribution to the root hash."""
    head = f"{entry.kind}\0{entry.mode:o}\0{entry.size}\0{entry.ref}\0"
    if entry.xattrs:
        head += "x\0" + entry.xattrs
    return os.fsencode(entry.path) + b"\0" + head.encode("utf-8", "surrogateescape")


def hash_lines(lines: Iterable[bytes]) -> str:
    """The root hash of entries' lines, in any order."""
    return hashlib.sha256(b"".join(item + b"\n" for item in sorted(lines))).hexdigest()


def root_hash(entries: Iterable[TreeEntry]) -> str:
    return hash_lines(line(entry) for entry in entries)


def from_manifest(entry: dict[str, Any]) -> TreeEntry:
    """A manifest entry ({"p", "k", "m", "s", "c" | "l", "x"}) as the root hash sees it."""
    kind = entry["k"]
    xattrs = xattr_text(entry.get("x"))
    if kind == FILE:
        digest = content_digest(entry["c"])
        return TreeEntry(entry["p"], kind, entry["m"], entry["s"], digest, xattrs)
    if kind in (LINK, HARDLINK):
        return TreeEntry(entry["p"], kind, 0, 0, entry["l"])
    return TreeEntry(entry["p"], kind, entry["m"], 0, "", xattrs)
