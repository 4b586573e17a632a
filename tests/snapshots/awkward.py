"""An awkward workspace (every kind of entry and metadata a restore must keep) and a description
of a tree that sees all of it: bytes, kinds, modes, owners, nanosecond times, link targets, which
paths share an inode, holes, `user.*` extended attributes and named pipes.

Paths are described as the hex of their bytes, so names that are not UTF-8 survive JSON.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
SPARSE_SIZE = 64 * MiB
# mtimes with every nanosecond digit set: a restore that rounds to µs or s is seen
ODD_NS = 1_600_000_000_123_456_789


def require_user_xattrs(where: Path) -> None:
    """Fail (never skip) when the filesystem under `where` does not keep `user.*` xattrs: the
    fidelity tests would prove nothing there."""
    probe = where / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.dumont-probe", b"1")
        assert os.getxattr(probe, "user.dumont-probe") == b"1"
    except OSError as exc:
        raise AssertionError(
            f"{where} does not keep user.* extended attributes ({exc}): run the tests where it "
            "does (ext4, xfs, btrfs, tmpfs on Linux ≥ 6.6)"
        ) from exc
    finally:
        probe.unlink()


def _write_sparse(path: Path, rng: random.Random) -> None:
    """SPARSE_SIZE bytes, nearly all a hole: data at 1 MiB, at 40 MiB and at the very end."""
    with open(path, "wb") as handle:
        handle.truncate(SPARSE_SIZE)
        for at in (MiB, 40 * MiB, SPARSE_SIZE - 5000):
            handle.seek(at)
            handle.write(rng.randbytes(5000))


def build(root: Path, *, seed: int = 7) -> None:
    """Everything a restore must keep. Runs as root (owners); the caller checks xattrs first."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    raw = os.fsencode(root)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon\n"]
    # a file of several chunks that compresses (the fixture stays small)
    (root / "log.txt").write_bytes(b" ".join(rng.choice(words) for _ in range(250_000)))
    (root / "random.bin").write_bytes(rng.randbytes(70_000))
    (root / "empty").write_bytes(b"")
    (root / "empty-dir").mkdir()
    # modes: setuid, setgid, sticky, nothing at all
    (root / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "suid", 0o4755)
    (root / "sgid-dir").mkdir()
    os.chmod(root / "sgid-dir", 0o2775)
    (root / "sticky").mkdir()
    (root / "sticky" / "inside").write_bytes(b"in a sticky dir")
    os.chmod(root / "sticky", 0o1777)
    (root / "locked").write_bytes(b"nobody may read this")
    os.chmod(root / "locked", 0o000)
    (root / "locked-dir").mkdir()
    (root / "locked-dir" / "kept").write_bytes(b"behind a 000 directory")
    os.chown(root / "locked-dir" / "kept", 1234, 5678)
    # names: not UTF-8, a newline, 250 bytes
    os.mkdir(raw + b"/caf\xe9-\xff\xfe")
    with open(raw + b"/caf\xe9-\xff\xfe/n\xe4me", "wb") as handle:
        handle.write(b"latin-1 name")
    (root / "new\nline").write_bytes(b"a newline in the name")
    (root / ("n" * 246 + ".txt")).write_bytes(b"a 250-byte name")
    # symlinks: relative, absolute and dangling, to a directory
    os.symlink("log.txt", root / "link")
    os.symlink("/nonexistent/target", root / "dangling")
    os.symlink("sticky", root / "dir-link")
    # hard links: three names of one file, one of them in another directory
    (root / "hard").mkdir()
    (root / "hard" / "a").write_bytes(rng.randbytes(3000))
    os.link(root / "hard" / "a", root / "hard" / "b")
    os.link(root / "hard" / "a", root / "hard-c")
    # holes, extended attributes, a named pipe
    _write_sparse(root / "sparse.img", rng)
    (root / "tagged").write_bytes(b"with attributes")
    os.setxattr(root / "tagged", "user.origin", b"dataset-v2")
    os.setxattr(root / "tagged", "user.binary", bytes(range(256)))
    os.setxattr(root / "sgid-dir", "user.dir-tag", b"on a directory")
    os.mkfifo(root / "pipe", 0o640)
    # nanosecond times last: writing into a directory moves its mtime
    for number, path in enumerate(sorted(_all_paths(root), key=len, reverse=True)):
        os.utime(path, ns=(ODD_NS + number, ODD_NS + number * 1001), follow_symlinks=False)


def _all_paths(root: Path) -> list[bytes]:
    found = [os.fsencode(root)]
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        found.extend(os.path.join(dirpath, name) for name in dirnames + filenames)
    return found


def _xattrs(path: bytes) -> dict[str, str]:
    return {
        name: os.getxattr(path, name, follow_symlinks=False).hex()
        for name in sorted(os.listxattr(path, follow_symlinks=False))
        if name.startswith("user.")
    }


def _content(path: bytes, st: os.stat_result) -> str:
    """SHA-256 of a file's bytes, readable whatever its mode (we are root)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def describe(root: Path, *, inodes: bool = True, xattrs: bool = True) -> dict[str, Any]:
    """path (hex) -> what a user would notice of it. `inodes`: name the hard-link group of
    each file (its first path); `xattrs`: its `user.*` attributes."""
    found: dict[str, Any] = {}
    first_name: dict[int, str] = {}
    base = os.fsencode(root)
    for path in sorted(_all_paths(root)):
        relative = os.path.relpath(path, base).hex()
        st = os.lstat(path)
        item: dict[str, Any] = {
            "mode": stat.S_IMODE(st.st_mode),
            "owner": [st.st_uid, st.st_gid],
            "mtime_ns": st.st_mtime_ns,
        }
        if stat.S_ISLNK(st.st_mode):
            item.update(kind="link", target=os.readlink(path).hex(), mode=0)
        elif stat.S_ISDIR(st.st_mode):
            item.update(kind="dir")
        elif stat.S_ISFIFO(st.st_mode):
            item.update(kind="fifo")
        else:
            item.update(kind="file", size=st.st_size, sha256=_content(path, st))
            if inodes:
                item["inode_group"] = first_name.setdefault(st.st_ino, relative)
        if xattrs and not stat.S_ISLNK(st.st_mode):
            item["xattrs"] = _xattrs(path)
        found[relative] = item
    return found


def allocated_bytes(path: Path) -> int:
    return os.lstat(path).st_blocks * 512
