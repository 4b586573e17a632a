"""agent/treehash.py against real rsync: a copy made with rsync's excludes hashes as the
original does with the same excludes (so the restore's check means what it says), and any
change to a file's contents, mode, a link's target or the tree's shape changes the hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.treehash import tree_hash

PATTERNS = [
    "*.tmp",
    "cache/",
    "/top-only.txt",
    "logs/**/*.log",
    "build/***",
    "data/raw?.bin",
    "[ab]x.txt",
    "deep/inner",
]


def make_tree(root: Path) -> None:
    files = {
        "a.txt": "a",
        "x.tmp": "t",
        "sub/y.tmp": "t",
        "cache/c": "c",
        "sub/cache/c": "c",
        "sub/cache.txt": "not a dir",
        "top-only.txt": "excluded at the top",
        "sub/top-only.txt": "kept below",
        "logs/a/b/run.log": "l",
        "logs/a/keep.txt": "k",
        "build/out/o": "o",
        "data/raw1.bin": "r",
        "data/raw10.bin": "kept",
        "ax.txt": "x",
        "cx.txt": "kept",
        "deep/inner/f": "gone",
        "x/deep/inner": "a file: matched too",
        "deep/innerx": "kept",
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (root / "empty").mkdir()
    (root / "link").symlink_to("a.txt")
    (root / "a.txt").chmod(0o640)


def rsync(src: Path, dst: Path, patterns: list[str]) -> None:
    excludes = [f"--exclude={p}" for p in patterns]
    subprocess.run(["rsync", "-a", *excludes, f"{src}/", f"{dst}/"], check=True)


def test_a_copy_made_with_excludes_hashes_as_the_original(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    rsync(src, dst, PATTERNS)
    copied = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
    assert "sub/cache.txt" in copied and "sub/top-only.txt" in copied
    assert not {"cache", "top-only.txt", "build", "data/raw1.bin", "deep/inner"} & set(copied)
    original = tree_hash(str(src), PATTERNS)
    assert tree_hash(str(dst), PATTERNS) == original == tree_hash(str(dst))
    assert original["files"] == len(
        [p for p in dst.rglob("*") if p.is_file() and not p.is_symlink()]
    )
    assert tree_hash(str(src)) != original  # without the excludes, the original has more


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "a.txt").write_text("b"),  # same size, other contents
        lambda root: (root / "a.txt").chmod(0o644),
        lambda root: ((root / "link").unlink(), (root / "link").symlink_to("cx.txt")),
        lambda root: (root / "empty").rmdir(),
        lambda root: (root / "empty" / "new").mkdir(),
        lambda root: (root / "cx.txt").rename(root / "cy.txt"),
    ],
)
def test_every_kind_of_change_changes_the_hash(
    tmp_path: Path, change: Callable[[Path], object]
) -> None:
    make_tree(tmp_path)
    before = tree_hash(str(tmp_path))
    change(tmp_path)
    assert tree_hash(str(tmp_path))["hash"] != before["hash"]


def test_the_module_runs_from_stdin_as_the_restore_sends_it(tmp_path: Path) -> None:
    make_tree(tmp_path)
    source = (Path(__file__).parents[2] / "agent" / "treehash.py").read_text()
    done = subprocess.run(
        [sys.executable, "-", str(tmp_path), "--exclude", "*.tmp"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
        cwd="/",
    )
    assert json.loads(done.stdout) == tree_hash(str(tmp_path), ["*.tmp"])
    missing = subprocess.run(
        [sys.executable, "-", str(tmp_path / "nope")], input=source, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
