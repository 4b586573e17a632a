"""A restore cut short resumes from what it staged instead of downloading everything again: the
real engine as a subprocess, a real S3 endpoint (rclone), the real RestoreRun session."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.snapshot.scan import STAGING_DIR, STAGING_LOCK, STAGING_PREFIX
from agent.snapshot.staging import StagingLock
from core.contracts.snapshots import RestoreResult, SnapshotProgress, SnapshotResult
from core.snapshots.channel import LocalEngine
from core.snapshots.restore_run import RestoreRun
from core.snapshots.session import RestoreFailed
from tests.snapshots.helpers import Harness, describe_tree, write_random_tree

EXIT_ORPHANED = 3  # agent.snapshot.restore: the control plane went away


class RewrittenPacks:
    """The engine's channel, with the presigned URL of the manifest's last pack replaced."""

    def __init__(self, engine: LocalEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.replaced_size = 0

    async def send(self, message: dict[str, Any]) -> None:
        if message["t"] == "restore":
            packs = [dict(pack) for pack in message["packs"]]
            packs[-1]["url"] = self.url
            self.replaced_size = packs[-1]["size"]
            message = {**message, "packs": packs}
        await self.engine.send(message)

    async def receive(self) -> dict[str, Any] | None:
        return await self.engine.receive()

    async def finish(self) -> tuple[int | None, str]:
        return await self.engine.finish()

    async def kill(self) -> None:
        await self.engine.kill()


class SilentServer:
    """Accepts connections and never answers: a GET from it hangs."""

    def __init__(self) -> None:
        self.contacted = asyncio.Event()
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.contacted.set()
        await reader.read()  # until the client goes
        writer.close()


@pytest.fixture
async def silent() -> AsyncIterator[SilentServer]:
    handle = SilentServer()
    server = await asyncio.start_server(handle._serve, "127.0.0.1", 0)
    handle.port = server.sockets[0].getsockname()[1]
    yield handle
    server.close()


def staging_entries(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if p.name.startswith(STAGING_PREFIX))


def visible(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if not p.name.startswith(STAGING_PREFIX))


async def restore_through(
    harness: Harness,
    target: Path,
    wrap: Callable[[LocalEngine], Any] | None = None,
    progress: list[SnapshotProgress] | None = None,
) -> tuple[RestoreRun, Any]:
    run = RestoreRun(
        harness.db,
        harness.store,
        harness.policy,
        "s-1",
        "alice",
        None if progress is None else progress.append,
    )
    engine = await LocalEngine.start("restore", str(target), harness.engine_args("m2", []))
    return run, engine if wrap is None else wrap(engine)


async def snapshot_of(harness: Harness, tmp_path: Path) -> tuple[Path, SnapshotResult]:
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=11, files=40, big_mib=12)
    return workspace, await harness.snapshot(workspace, "s-1")


def assert_exact(target: Path, workspace: Path, restored: RestoreResult, made: Any) -> None:
    assert restored.root_hash == made.root_hash
    assert describe_tree(target) == describe_tree(workspace)
    assert staging_entries(target) == []  # no staging, no lock file left behind


async def test_a_restore_cut_short_twice_resumes_without_downloading_again(
    harness: Harness, silent: SilentServer, tmp_path: Path
) -> None:
    workspace, made = await snapshot_of(harness, tmp_path)
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("the user's file")

    # 1. The store refuses one pack: the restore fails (a retry may help) and stages the rest.
    missing = harness.store.presign_get("packs/alice/not-there", 600)
    run, channel = await restore_through(harness, target, lambda e: RewrittenPacks(e, missing))
    with pytest.raises(RestoreFailed, match="TransferError"):
        await run.run(channel)
    assert visible(target) == ["keep.txt"]  # the target is as it was...
    assert staging_entries(target) == [STAGING_DIR]  # ...and the staging kept for the retry
    lost = channel.replaced_size
    assert 0 < lost < made.stored_bytes / 2

    # 2. The retry hangs on that pack and its worker dies: the engine stops at once.
    hanging = f"http://127.0.0.1:{silent.port}/pack"
    run, channel = await restore_through(harness, target, lambda e: RewrittenPacks(e, hanging))
    attempt = asyncio.create_task(run.run(channel))
    await silent.contacted.wait()
    with pytest.raises(OSError, match="still running"):  # it holds the staging
        StagingLock(str(target / STAGING_LOCK)).acquire(0)
    code, stderr = await asyncio.wait_for(channel.engine.finish(), 60)  # stdin closed
    assert code == EXIT_ORPHANED, stderr
    with pytest.raises(RestoreFailed):
        await attempt
    assert visible(target) == ["keep.txt"]
    assert STAGING_DIR in staging_entries(target)

    # 3. The next retry fetches only that pack; the progress counts the rest as done.
    progress: list[SnapshotProgress] = []
    run, channel = await restore_through(harness, target, progress=progress)
    restored = await run.run(channel)
    assert_exact(target, workspace, restored, made)
    assert 0 < restored.downloaded_bytes <= lost
    assert restored.reused_bytes > made.logical_bytes / 2
    # Before any download, then at the end.
    assert progress[0].bytes_downloaded >= (made.stored_bytes - lost) * 0.9
    assert progress[-1].bytes_downloaded >= made.stored_bytes * 0.9


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        old = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([old[0] ^ 0xFF]))


def staged_copy(workspace: Path, target: Path) -> Path:
    """The workspace as a killed restore may leave it in the staging (all of it written)."""
    staging = target / STAGING_DIR
    shutil.copytree(workspace, staging, symlinks=True)
    return staging


async def test_damaged_and_stray_staged_files_are_replaced_or_removed(
    harness: Harness, tmp_path: Path
) -> None:
    workspace, made = await snapshot_of(harness, tmp_path)
    target = tmp_path / "out"
    staging = staged_copy(workspace, target)
    flip_byte(staging / "big.bin", 5 * 1024 * 1024)  # same size: only the content tells
    big = max((staging / "d1").rglob("*.bin"), key=lambda p: p.stat().st_size)
    os.truncate(big, big.stat().st_size // 2)  # a write cut short
    (staging / "stray.txt").write_text("not in the snapshot")
    (staging / "d0" / "stray-dir" / "deeper").mkdir(parents=True)
    (staging / "secret.txt").unlink()
    (staging / "secret.txt").mkdir()  # a directory where a file belongs
    (staging / "empty" / "nested").rmdir()
    (staging / "empty" / "nested").write_text("a file where a directory belongs")

    restored = await harness.restore("s-1", target)
    assert_exact(target, workspace, restored, made)
    assert restored.downloaded_bytes < made.stored_bytes / 4
    assert restored.reused_bytes > made.logical_bytes / 2


async def test_read_only_directories_and_links_left_staged_are_taken_up(
    harness: Harness, tmp_path: Path
) -> None:
    workspace, made = await snapshot_of(harness, tmp_path)
    target = tmp_path / "out"
    staging = staged_copy(workspace, target)
    # A killed attempt's metadata step had begun: modes final, some files still to write.
    locked = staging / "d2" / "e2"
    victim = min((p for p in locked.iterdir() if p.stat().st_size > 0), key=lambda p: p.name)
    victim.unlink()
    os.chmod(locked, 0o500)
    os.chmod(staging / "d2", 0o555)
    os.chmod(staging / "run.sh", 0o400)
    os.chmod(staging / "secret.txt", 0o000)
    (staging / "link-to-f0").unlink()
    os.symlink("somewhere/else", staging / "link-to-f0")  # a stale link

    restored = await harness.restore("s-1", target)
    assert_exact(target, workspace, restored, made)
    assert restored.downloaded_bytes < made.stored_bytes / 4
