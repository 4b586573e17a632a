"""A hash of a directory tree, to check that a copy (the restore from a standby) is the
original: every entry below DIR, sorted by relative path, with its type, permission bits, size
and the sha256 of its contents (a symlink: its target). Owners and times are left out: the two
ends log in as different users, and a copy's directory times are not the original's.

    python3 -m agent.treehash DIR [--exclude PATTERN]...

prints one JSON line `{"files": n, "bytes": n, "entries": n, "hash": hex}` (regular files,
their total size, every entry, the tree's hash). Exclude patterns follow rsync's rules (the
copy was made with them): `*` and `?` stay within a path component, `**` crosses them, a
leading `/` anchors to DIR, a trailing `/` matches directories only, a pattern without `/`
matches the last component, and an excluded directory's contents are left out with it.

Standard library only: it runs on the machines (the control plane may also send this file
on stdin: `python3 - DIR ...`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import sys
from typing import Iterator, Pattern

CHUNK = 1 << 20


class Exclude:
    """One rsync exclude pattern."""

    def __init__(self, pattern: str) -> None:
        self.dirs_only = pattern.endswith("/")
        body = pattern.rstrip("/") or "/"
        self.anchored = body.startswith("/")
        body = body.lstrip("/")
        self.whole_path = self.anchored or "/" in body or "**" in body
        self.regex: Pattern[str] = re.compile(_translate(body), re.DOTALL)

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dirs_only and not is_dir:
            return False
        if not self.whole_path:
            return self.regex.fullmatch(rel.rsplit("/", 1)[-1]) is not None
        if self.anchored:
            return self.regex.fullmatch(rel) is not None
        parts = rel.split("/")
        # Unanchored: matched against the end of the path, at a component boundary.
        return any(self.regex.fullmatch("/".join(parts[i:])) for i in range(len(parts)))


def _translate(pattern: str) -> str:
    """An rsync wildcard pattern as a regular expression."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("/***", i) and i + 4 == len(pattern):
            out.append("(?:/.*)?")  # `dir/***`: the directory and everything in it
            break
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                inner = pattern[i + 1 : end]
                if inner.startswith("!"):
                    inner = "^" + inner[1:]
                out.append("[" + inner.replace("\\", "\\\\") + "]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _entries(root: str, excludes: list[Exclude]) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry below root that no pattern excludes."""
    pending = [""]
    while pending:
        prefix = pending.pop()
        try:
            with os.scandir(os.path.join(root, prefix) if prefix else root) as found:
                children = list(found)
        except FileNotFoundError:
            continue  # removed while we walked: the hashes will differ, as they should
        for child in children:
            rel = prefix + child.name
            try:
                info = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            if any(e.matches(rel, is_dir) for e in excludes):
                continue
            yield rel, info
            if is_dir:
                pending.append(rel + "/")


def _content_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    if stat.S_ISFIFO(mode):
        return "p"
    if stat.S_ISSOCK(mode):
        return "s"
    return "c" if stat.S_ISCHR(mode) else "b"


def tree_hash(root: str, patterns: list[str] | None = None) -> dict[str, object]:
    """{"files", "bytes", "entries", "hash"} of the tree below `root`."""
    excludes = [Exclude(p) for p in patterns or []]
    records: list[tuple[bytes, bytes]] = []
    files = total = 0
    for rel, info in _entries(root, excludes):
        path = os.path.join(root, rel)
        kind = _kind(info.st_mode)
        mode = stat.S_IMODE(info.st_mode)
        size = 0
        content = ""
        if kind == "f":
            try:
                content = _content_digest(path)
            except FileNotFoundError:
                continue
            size = info.st_size
            files += 1
            total += size
        elif kind == "l":
            target = os.readlink(path)
            content = target
            size = len(os.fsencode(target))
            mode = 0  # a symlink's own bits mean nothing on Linux, and rsync does not set them
        elif kind in ("c", "b"):
            content = f"{os.major(info.st_rdev)},{os.minor(info.st_rdev)}"
        name = os.fsencode(rel)
        line = b"%d:%s\0%s\0%o\0%d\0%s\n" % (
            len(name),
            name,
            kind.encode(),
            mode,
            size,
            os.fsencode(content),
        )
        records.append((name, line))
    records.sort()
    digest = hashlib.sha256()
    for _, line in records:
        digest.update(line)
    return {"files": files, "bytes": total, "entries": len(records), "hash": digest.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m agent.treehash", description=__doc__)
    parser.add_argument("dir")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.dir):
        sys.stderr.write(f"treehash: {args.dir} is not a directory\n")
        return 2
    try:
        result = tree_hash(args.dir, args.exclude)
    except OSError as exc:
        sys.stderr.write(f"treehash: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
