"""A restore keeps what tar and restic keep: hard links as links, holes as holes, `user.*`
extended attributes and named pipes, on top of bytes, modes, owners, odd names, symlinks and
nanosecond times. The tests run where the filesystem keeps `user.*` xattrs, and fail otherwise."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.snapshot.fidelity import data_ranges
from agent.snapshot.ondisk import write_around_holes
from core.snapshots.manifest import ManifestError, check_tree
from tests.snapshots import awkward
from tests.snapshots.helpers import Harness, MiB


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    awkward.require_user_xattrs(tmp_path)
    root = tmp_path / "ws"
    awkward.build(root)
    return root


def test_the_filesystem_here_keeps_user_xattrs(tmp_path: Path) -> None:
    awkward.require_user_xattrs(tmp_path)


async def test_an_awkward_workspace_comes_back_exactly(
    harness: Harness, workspace: Path, tmp_path: Path
) -> None:
    made = await harness.snapshot(workspace, "awk-1")
    out = tmp_path / "out"
    restored = await harness.restore("awk-1", out)
    assert restored.root_hash == made.root_hash
    assert awkward.describe(out) == awkward.describe(workspace)
    # hard links are links: one inode, three names
    names = [out / "hard" / "a", out / "hard" / "b", out / "hard-c"]
    assert len({path.stat().st_ino for path in names}) == 1
    assert (out / "hard" / "a").stat().st_nlink == 3
    # holes are holes: a 64 MiB file with 15 kB of data takes about that much disk
    assert (out / "sparse.img").stat().st_size == awkward.SPARSE_SIZE
    assert awkward.allocated_bytes(out / "sparse.img") < MiB
    assert os.getxattr(out / "tagged", "user.binary") == bytes(range(256))
    assert stat.S_ISFIFO((out / "pipe").lstat().st_mode)


async def test_restoring_over_a_workspace_replaces_its_attributes_and_kinds(
    harness: Harness, workspace: Path, tmp_path: Path
) -> None:
    made = await harness.snapshot(workspace, "awk-2")
    out = tmp_path / "out"
    out.mkdir()
    os.setxattr(out, "user.stale", b"from the image")
    os.mkfifo(out / "tagged")  # a pipe where the snapshot has a file
    (out / "pipe").write_bytes(b"a file where the snapshot has a pipe")
    restored = await harness.restore("awk-2", out)
    assert restored.root_hash == made.root_hash
    assert awkward.describe(out) == awkward.describe(workspace)


async def test_a_second_snapshot_of_linked_and_sparse_files_uploads_nothing(
    harness: Harness, workspace: Path
) -> None:
    first = await harness.snapshot(workspace, "awk-3")
    again = await harness.snapshot(workspace, "awk-4")
    assert again.uploaded_bytes == 0
    assert again.root_hash == first.root_hash
    # the sparse file's zeros are one chunk, stored once
    assert first.uploaded_bytes < 2 * MiB


async def test_changing_only_an_attribute_changes_the_root_hash(
    harness: Harness, workspace: Path
) -> None:
    first = await harness.snapshot(workspace, "awk-5")
    os.setxattr(workspace / "tagged", "user.origin", b"dataset-v3")
    second = await harness.snapshot(workspace, "awk-6")
    assert second.root_hash != first.root_hash


def test_data_ranges_leave_out_the_holes() -> None:
    holes = [[0, 10], [20, 30], [50, 100]]
    assert data_ranges(0, 100, holes) == [(10, 20), (30, 50)]
    assert data_ranges(5, 20, holes) == [(10, 20)]
    assert data_ranges(30, 20, holes) == [(30, 50)]
    assert data_ranges(60, 10, holes) == []


def test_a_hole_list_that_covers_data_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "f"
    content = bytes(10) + b"data in a supposed hole" + bytes(10)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 100 + len(content))
        write_around_holes(fd, 100, content, [[0, 200]])
    finally:
        os.close(fd)
    assert path.read_bytes()[100:] == content


def test_a_hard_link_must_name_a_file_of_the_tree() -> None:
    entries: list[dict[str, Any]] = [
        {"p": ".", "k": "d", "m": 0o755},
        {"p": "dir", "k": "d", "m": 0o755},
        {"p": "link", "k": "h", "l": "dir"},
    ]
    with pytest.raises(ManifestError, match="hard link"):
        check_tree(entries, {})
    entries[2]["l"] = "missing"
    with pytest.raises(ManifestError, match="hard link"):
        check_tree(entries, {})
