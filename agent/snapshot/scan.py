"""Walking the workspace: every directory, file, symlink and named pipe, with its metadata, in
path order."""

from __future__ import annotations

import os
import stat
from typing import Iterator

from agent.snapshot.tree import DIR, FIFO, FILE, LINK

# Restores stage their tree here inside the target; never part of a snapshot.
STAGING_PREFIX = ".dumont-restore-"
# Kept when a restore is interrupted, so the next one into the same target takes it up.
STAGING_DIR = STAGING_PREFIX + "staging"
STAGING_LOCK = STAGING_PREFIX + "lock"


def relative(parent: str, name: str) -> str:
    return name if parent == "." else parent + "/" + name


def walk(workspace: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, kind, lstat) for the root "." and everything under it. Sockets and device
    nodes are skipped: a socket belongs to a running process, a device to the machine."""
    yield ".", DIR, os.lstat(workspace)
    stack: list[str] = ["."]
    while stack:
        parent = stack.pop()
        directory = workspace if parent == "." else os.path.join(workspace, parent)
        with os.scandir(directory) as listing:
            found = sorted(listing, key=lambda item: item.name)
        subdirs = []
        for item in found:
            if parent == "." and item.name.startswith(STAGING_PREFIX):
                continue
            path = relative(parent, item.name)
            st = item.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                yield path, DIR, st
                subdirs.append(path)
            elif stat.S_ISREG(st.st_mode):
                yield path, FILE, st
            elif stat.S_ISLNK(st.st_mode):
                yield path, LINK, st
            elif stat.S_ISFIFO(st.st_mode):
                yield path, FIFO, st
        stack.extend(reversed(subdirs))
