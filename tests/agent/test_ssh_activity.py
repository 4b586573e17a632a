"""Interactive SSH activity on a real machine: real pseudo-terminals read through /proc and
/dev/pts. There is no sshd here, so a small process that names itself `sshd` holds the terminal
as sshd does: its child (the "shell") has the pty as controlling terminal, and what the test
types goes through the pty master."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.ssh_activity import PtsSshSource, SimFileSshSource, choose_source, pts_index

# Renames itself sshd (prctl PR_SET_NAME), starts a shell that becomes `cat` on a new pty, and
# relays its stdin to the pty master.
FAKE_SSHD = r"""
import ctypes, os, pty, sys
ctypes.CDLL(None).prctl(15, b"sshd", 0, 0, 0)
pid, master = pty.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", "echo ready; exec cat"])
seen = b""
while b"ready" not in seen:  # the child is on its terminal
    seen += os.read(master, 100)
print(pid, flush=True)
for line in sys.stdin:
    os.write(master, line.encode())
"""


@contextmanager
def terminal_session() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """(the sshd stand-in, the N of its session's /dev/pts/N)."""
    sshd = subprocess.Popen(
        [sys.executable, "-c", FAKE_SSHD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert sshd.stdout is not None
        shell = sshd.stdout.readline().strip()
        stat = Path(f"/proc/{shell}/stat").read_text()
        tty_nr = int(stat[stat.rindex(")") + 2 :].split()[4])
        index = pts_index(tty_nr)
        assert index is not None, "the shell has no pty"
        yield sshd, index
    finally:
        sshd.kill()
        sshd.wait()


def type_line(sshd: subprocess.Popen[str], text: str) -> None:
    assert sshd.stdin is not None
    sshd.stdin.write(text + "\n")
    sshd.stdin.flush()


def wait_for(condition: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)


def test_typing_in_a_terminal_session_is_activity_and_an_idle_one_is_not() -> None:
    source = PtsSshSource()
    with terminal_session() as (sshd, index):
        # The kernel moves a terminal's atime in 8 s steps: start from an hour ago.
        an_hour_ago = time.time() - 3600
        os.utime(f"/dev/pts/{index}", (an_hour_ago, an_hour_ago))

        idle = source.sample()
        assert idle.active_users == 1
        assert idle.last_activity is not None
        assert abs(idle.last_activity.timestamp() - an_hour_ago) < 1
        time.sleep(0.3)
        assert source.sample().last_activity == idle.last_activity  # open, nobody typing

        type_line(sshd, "nvidia-smi")
        wait_for(
            lambda: (
                (sample := source.sample()).last_activity is not None
                and sample.last_activity > datetime.now(UTC) - timedelta(seconds=60)
            )
        )
        typed = source.sample().last_activity

    closed = source.sample()
    assert closed.active_users == 0
    assert closed.last_activity == typed  # the last keystroke is remembered after logout


def test_pty_numbers_decode_from_the_kernels_tty_number() -> None:
    assert pts_index((136 << 8) | 3) == 3
    assert pts_index((137 << 8) | 4) == 260
    assert pts_index((4 << 8) | 1) is None  # /dev/tty1, a console: not an SSH terminal
    assert pts_index(0) is None  # no controlling terminal


def test_sim_file_source(tmp_path: Path) -> None:
    path = tmp_path / "ssh.json"
    source = SimFileSshSource(str(path))
    missing = source.sample()
    assert missing.active_users is None and missing.last_activity is None

    path.write_text(json.dumps({"sessions": 2, "last_input_at": "2026-11-22T07:59:45+00:00"}))
    sample = source.sample()
    assert sample.active_users == 2
    assert sample.last_activity == datetime(2026, 11, 22, 7, 59, 45, tzinfo=UTC)

    assert isinstance(choose_source({"DUMONT_SIM_SSH_FILE": str(path)}), SimFileSshSource)
    assert isinstance(choose_source({}), PtsSshSource)
