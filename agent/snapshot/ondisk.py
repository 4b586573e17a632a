"""Writing a restored tree's special parts and reading it back: chunks around holes, the
entries that are not files (symlinks, hard links, named pipes), and the root hash of what is on
disk, which the restore answers with."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

from agent.snapshot import fidelity
from agent.snapshot.scan import walk
from agent.snapshot.statcache import StatCache
from agent.snapshot.tree import (
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    LINK,
    TreeEntry,
    content_digest,
    root_hash,
    xattr_text,
)

Location = Sequence[Any]  # pack index, offset, length, raw size, codec


def write_all(fd: int, offset: int, content: memoryview) -> None:
    done = 0
    while done < len(content):  # a write may be short
        done += os.pwrite(fd, content[done:], offset + done)


def write_around_holes(fd: int, offset: int, content: bytes, holes: list[list[int]]) -> None:
    """Write the chunk except where the file had holes, which the sized file already is. Only
    zeros are left out: a hole list that does not match the content cannot lose data."""
    view = memoryview(content)
    written = offset
    for start, end in fidelity.data_ranges(offset, len(content), holes) + [
        (offset + len(content), offset + len(content))
    ]:
        if written < start:  # [written, start) is a hole: skipped when it holds only zeros
            gap = content[written - offset : start - offset]
            if gap.count(0) != len(gap):
                write_all(fd, written, view[written - offset : start - offset])
        write_all(fd, start, view[start - offset : end - offset])
        written = end


def make(entry: dict[str, Any], path: str, staged: Callable[[str], str]) -> None:
    """Create a symlink, hard link (to the staged file it names) or named pipe at `path`."""
    kind = entry["k"]
    if kind == LINK:
        os.symlink(entry["l"], path)
    elif kind == HARDLINK:
        os.link(staged(entry["l"]), path)
    elif kind == FIFO:
        os.mkfifo(path, 0o600)
    else:
        raise ValueError(f"{entry['p']}: cannot make a {kind!r} entry")


def tree_hash(
    target: str,
    files: Mapping[str, dict[str, Any]],
    chunks: Mapping[str, Location],
    cache: StatCache,
    stats: dict[str, Any],
) -> str:
    """The root hash of the tree at `target`, file contents taken from the manifest (their
    chunks were verified as they were written); remembers each file in the stat cache."""
    found: list[TreeEntry] = []
    links = fidelity.HardLinks()
    for path, kind, st in walk(target):
        full = target if path == "." else os.path.join(target, path)
        first = links.earlier_name(path, st) if kind == FILE else None
        if first is not None:
            found.append(TreeEntry(path, HARDLINK, 0, 0, first))
        elif kind == FILE:
            entry = files.get(path)
            ref = content_digest(entry["c"]) if entry is not None else "unrestored"
            xattrs = xattr_text(fidelity.read_xattrs(full))
            found.append(TreeEntry(path, kind, st.st_mode & 0o7777, st.st_size, ref, xattrs))
            if entry is not None:
                cache.remember(path, st, [(d, chunks[d][3]) for d in entry["c"]])
            stats["files"] += 1
            stats["bytes"] += st.st_size
        elif kind == LINK:
            link = os.readlink(os.path.join(target, path))
            found.append(TreeEntry(path, kind, 0, 0, link))
        else:
            xattrs = xattr_text(fidelity.read_xattrs(full)) if kind == DIR else ""
            found.append(TreeEntry(path, kind, st.st_mode & 0o7777, 0, "", xattrs))
    cache.save()
    return root_hash(found)
