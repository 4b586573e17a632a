"""The engine runs on rented machines with whatever `python3` their image has: the oldest one we
support (3.8, Ubuntu 20.04's) must snapshot and restore exactly, and exit when done."""

from __future__ import annotations

import glob
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.snapshots.helpers import Harness, write_random_tree


def _oldest_python() -> str | None:
    """A working Python 3.8 (a pyenv shim on PATH may name one it cannot run)."""
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.8*/bin/python3.8"))
    candidates += [found for found in [shutil.which("python3.8")] if found]
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 8))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


OLDEST = _oldest_python()


@pytest.mark.skipif(OLDEST is None, reason="no Python 3.8 on this machine")
@pytest.mark.parametrize("codec", ["zlib", "zstd-cli"])
async def test_the_engine_round_trips_under_python_3_8(
    harness: Harness, tmp_path: Path, codec: str
) -> None:
    assert OLDEST is not None
    old = replace(harness, python=OLDEST)
    workspace = tmp_path / "ws"
    write_random_tree(workspace, seed=5, files=40, big_mib=6)
    # Under 3.8 the engine once hung at exit, joining its idle chunking processes: the run
    # below would never return.
    made = await old.snapshot(workspace, f"py38-{codec}", extra=["--codec", codec])
    await old.assert_restores(f"py38-{codec}", tmp_path / "out", made, workspace)
