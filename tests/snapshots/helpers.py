"""Drive the engine locally through the real sessions, and build and compare trees."""

from __future__ import annotations

import os
import random
import stat
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from core.contracts.snapshots import RestoreResult, SnapshotProgress, SnapshotResult
from core.snapshots.channel import LocalEngine
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.restore_run import RestoreRun
from core.snapshots.session import SnapshotRun, SnapshotTarget
from core.snapshots.store import ObjectStore

MiB = 1024 * 1024


@dataclass
class Harness:
    db: Engine
    store: ObjectStore
    policy: SnapshotPolicy
    cache_dir: Path
    python: str = sys.executable  # the engine's interpreter (machines may have an older one)

    def engine_args(self, machine_id: str, extra: list[str]) -> list[str]:
        return ["--cache", str(self.cache_dir / f"{machine_id}.json"), "--pack-mib", "4", *extra]

    async def snapshot(
        self,
        workspace: Path,
        snapshot_id: str,
        *,
        owner: str = "alice",
        machine: str = "m1",
        extra: list[str] | None = None,
        on_progress: Callable[[SnapshotProgress], Awaitable[None] | None] | None = None,
    ) -> SnapshotResult:
        run = SnapshotRun(
            self.db,
            self.store,
            self.policy,
            SnapshotTarget(snapshot_id, owner, machine),
            on_progress,
        )
        channel = await LocalEngine.start(
            "create", str(workspace), self.engine_args(machine, extra or []), python=self.python
        )
        return await run.run(channel)

    async def restore(
        self, snapshot_id: str, target: Path, *, owner: str = "alice", machine: str = "m2"
    ) -> RestoreResult:
        run = RestoreRun(self.db, self.store, self.policy, snapshot_id, owner)
        channel = await LocalEngine.start(
            "restore", str(target), self.engine_args(machine, []), python=self.python
        )
        return await run.run(channel)

    async def assert_restores(
        self, snapshot_id: str, out: Path, made: SnapshotResult, workspace: Path
    ) -> None:
        """Restoring the snapshot into `out` gives its root hash and the workspace's tree."""
        restored = await self.restore(snapshot_id, out)
        assert restored.root_hash == made.root_hash
        assert describe_tree(out) == describe_tree(workspace)


def write_random_tree(root: Path, *, seed: int, files: int, big_mib: int = 0) -> None:
    """Random files of mixed sizes and kinds, a symlink, empty dirs and odd permissions."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        folder = root / f"d{number % 7}" / f"e{number % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([0, 1, 100, 5000, 70_000, 300_000, 1_500_000])
        if number % 2:
            data = rng.randbytes(size)
        else:
            words = [b"alpha", b"beta", b"gamma", b"delta", b"\n"]
            data = b" ".join(rng.choice(words) for _ in range(size // 5 + 1))[:size]
        (folder / f"f{number}.bin").write_bytes(data)
    (root / "empty" / "nested").mkdir(parents=True)
    (root / "secret.txt").write_bytes(b"token")
    os.chmod(root / "secret.txt", 0o600)
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    (root / "shared").mkdir()
    os.chmod(root / "shared", 0o2775)
    os.symlink("d0/e0/f0.bin", root / "link-to-f0")
    os.symlink("/nonexistent/target", root / "dangling")
    (root / "dup-a.bin").write_bytes(b"same content" * 1000)
    (root / "dup-b.bin").write_bytes(b"same content" * 1000)
    if big_mib:
        with open(root / "big.bin", "wb") as handle:
            block = rng.randbytes(MiB)
            for index in range(big_mib):
                # Mostly incompressible, a little of it repetitive: both codec paths run.
                handle.write(block if index % 8 else bytes(MiB))
                block = rng.randbytes(MiB) if index % 3 == 0 else block[1:] + block[:1]


def describe_tree(root: Path) -> dict[str, Any]:
    """Everything a user would notice: kind, mode, content, link target, mtime."""
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            relative = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[relative] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                digest = __import__("hashlib").sha256(path.read_bytes()).hexdigest()
                found[relative] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, digest)
    found["."] = ("dir", stat.S_IMODE(root.lstat().st_mode))
    return found
