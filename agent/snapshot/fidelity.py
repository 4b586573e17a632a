"""What a snapshot keeps beyond bytes and modes, as tar and restic do: hard links, holes and
`user.*` extended attributes (named pipes are plain entries, see scan.py).

- Hard links: the first name of an inode in the walk is a file; every later name in the same
  walk is a "h" entry naming it, recreated with link(). Names outside the workspace are not seen.
- Holes: a file that occupies fewer blocks than its size is asked where its holes are
  (SEEK_HOLE/SEEK_DATA); its entry lists them ("z": [[start, end], ...]) and a restore leaves
  them unwritten. The content (zeros there) is chunked and hashed as before: holes change how a
  file is stored, not what it holds.
- `user.*` xattrs ("x": {name: hex value}) of files and directories. Other namespaces (security,
  trusted, system: ACLs, capabilities, SELinux labels) belong to the machine, not the workspace.
"""

from __future__ import annotations

import errno
import os
from typing import Any, List

Holes = List[List[int]]
# Filesystems (or platforms) that keep no xattrs answer these: the entry simply has none.
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM, errno.EACCES)
_HAS_XATTRS = hasattr(os, "listxattr")


class HardLinks:
    """The first name seen of each inode with several names."""

    def __init__(self) -> None:
        self._first: dict[tuple[int, int], str] = {}

    def earlier_name(self, path: str, st: os.stat_result) -> str | None:
        """The name this file was first seen under, or None (and remember it) if this is it."""
        if st.st_nlink < 2:
            return None
        first = self._first.setdefault((st.st_dev, st.st_ino), path)
        return None if first == path else first


def holes(full: str, st: os.stat_result) -> Holes:
    """[start, end) ranges of a file that hold no data; none for a file stored in full."""
    if st.st_size == 0 or st.st_blocks * 512 >= st.st_size or not hasattr(os, "SEEK_HOLE"):
        return []
    found: Holes = []
    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        offset = 0
        while offset < st.st_size:
            start = os.lseek(fd, offset, os.SEEK_HOLE)
            if start >= st.st_size:
                break
            try:
                end = os.lseek(fd, start, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: a hole to the end of the file
                    raise
                end = st.st_size
            found.append([start, min(end, st.st_size)])
            offset = end
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP):  # no SEEK_HOLE here: stored in full
            return []
        raise
    finally:
        os.close(fd)
    return found


def data_ranges(offset: int, length: int, file_holes: Holes) -> list[tuple[int, int]]:
    """The parts of [offset, offset + length) outside the holes, as (start, end)."""
    ranges: list[tuple[int, int]] = []
    at, end = offset, offset + length
    for hole_start, hole_end in file_holes:
        if hole_end <= at or hole_start >= end:
            continue
        if hole_start > at:
            ranges.append((at, hole_start))
        at = max(at, hole_end)
    if at < end:
        ranges.append((at, end))
    return ranges


def read_xattrs(target: Any) -> dict[str, str]:
    """{name: hex value} of the `user.*` attributes of a path or an open fd."""
    if not _HAS_XATTRS:
        return {}
    try:
        names = os.listxattr(target)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return {}
        raise
    found: dict[str, str] = {}
    for name in names:
        if name.startswith("user."):
            try:
                found[name] = os.getxattr(target, name).hex()
            except OSError as exc:  # removed meanwhile
                if exc.errno not in _NO_XATTRS:
                    raise
    return found


def write_xattrs(target: Any, wanted: dict[str, str] | None, *, replace: bool = False) -> None:
    """Set the entry's `user.*` attributes on a path or fd; `replace`: also remove those it
    lacks (a directory that existed before the restore, such as the target itself)."""
    if replace and _HAS_XATTRS:
        for name in read_xattrs(target):
            if name not in (wanted or {}):
                os.removexattr(target, name)
    for name, value in sorted((wanted or {}).items()):
        os.setxattr(target, name, bytes.fromhex(value))


def extras(full: str, kind_is_file: bool, st: os.stat_result) -> dict[str, Any]:
    """The manifest fields of a file or directory beyond the basic ones: "x", and "z" for a
    file with holes. Reads nothing unless the stat says there is something to find."""
    found: dict[str, Any] = {}
    xattrs = read_xattrs(full)
    if xattrs:
        found["x"] = xattrs
    if kind_is_file:
        file_holes = holes(full, st)
        if file_holes:
            found["z"] = file_holes
    return found
