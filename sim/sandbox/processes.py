"""Run a machine's commands as real processes and find and end all of them again.

Each command carries the machine's marker variables in its environment, so stop/destroy can
find daemonised children (setsid, nohup, double fork) by scanning /proc/*/environ.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sim.sandbox import network
from sim.sandbox.layout import (
    AGENT_MOUNTPOINT,
    MARKER_DIR,
    MARKER_ID,
    WORKSPACE_MOUNTPOINT,
    MachineLayout,
)

# Inside a private mount namespace, bind the machine's workspace at /workspace and its agent
# directory at /opt/dumont-agent, then run argv.
_MOUNT_AND_EXEC = (
    f'mount --bind "$1" {WORKSPACE_MOUNTPOINT} && mount --bind "$2" {AGENT_MOUNTPOINT} '
    f'&& cd {WORKSPACE_MOUNTPOINT} && shift 2 && exec "$@"'
)


def namespace_available() -> bool:
    """Whether sessions can get a private mount namespace (needs root and `unshare -m`)."""
    try:
        Path(WORKSPACE_MOUNTPOINT).mkdir(exist_ok=True)
        Path(AGENT_MOUNTPOINT).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as probe:
            result = subprocess.run(
                [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "--",
                    "/bin/sh",
                    "-c",
                    _MOUNT_AND_EXEC,
                    "probe",
                    probe,
                    probe,
                    "true",
                ],
                capture_output=True,
                timeout=10,
                check=False,
            )
        return result.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def wrap(layout: MachineLayout, argv: list[str]) -> list[str]:
    """argv as the machine runs it: inside the machine's network namespace and the workspace
    mount namespace, where it has them."""
    if layout.namespace:
        argv = _in_mount_namespace(layout, argv)
    return network.enter(layout.netns, argv) if layout.netns else argv


def _in_mount_namespace(layout: MachineLayout, argv: list[str]) -> list[str]:
    return [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        _MOUNT_AND_EXEC,
        "sandbox",
        str(layout.workspace),
        str(layout.agent_dir),
        *argv,
    ]


def _become_tty_session_leader() -> None:
    # Runs in the child between fork and exec: new session, the pty slave on fd 0 as its
    # controlling terminal, as sshd does for a shell.
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def spawn(
    layout: MachineLayout,
    argv: list[str],
    env: dict[str, str],
    *,
    stdin: Any = subprocess.PIPE,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    tty: bool = False,
) -> asyncio.subprocess.Process:
    preexec: Callable[[], None] | None = _become_tty_session_leader if tty else None
    return await asyncio.create_subprocess_exec(
        *wrap(layout, argv),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=str(layout.workspace),
        env={**env, **layout.markers()},
        start_new_session=True,
        preexec_fn=preexec,
    )


def _environ(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _scan(match: Callable[[dict[bytes, bytes]], bool]) -> Iterator[int]:
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        raw = _environ(entry)
        if MARKER_ID.encode() not in raw:
            continue
        variables = dict(item.partition(b"=")[::2] for item in raw.split(b"\0") if item)
        if match(variables):
            yield int(entry)


def machine_pids(layout: MachineLayout) -> list[int]:
    wanted_id, wanted_dir = str(layout.instance_id).encode(), str(layout.root).encode()
    return list(
        _scan(
            lambda env: (
                env.get(MARKER_ID.encode()) == wanted_id
                and env.get(MARKER_DIR.encode()) == wanted_dir
            )
        )
    )


def pids_under(data_dir: Path) -> list[int]:
    """Every sandbox process of any machine kept under `data_dir` (test clean-up)."""
    prefix = str(data_dir.resolve()).encode() + b"/"
    return list(_scan(lambda env: env.get(MARKER_DIR.encode(), b"").startswith(prefix)))


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


async def end_processes(find: Callable[[], list[int]], grace: float) -> int:
    """SIGTERM, up to `grace` seconds, then SIGKILL until nothing is left. Returns how many."""
    pids = find()
    ended = set(pids)
    if grace > 0 and pids:
        _signal_all(pids, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while pids and loop.time() < deadline:
            await asyncio.sleep(0.05)
            pids = find()
    # Processes may fork while being killed; sweep until the scan comes back empty.
    for _ in range(200):
        pids = find()
        if not pids:
            break
        ended.update(pids)
        _signal_all(pids, signal.SIGKILL)
        await asyncio.sleep(0.02)
    return len(ended)


def kill_now(find: Callable[[], list[int]]) -> int:
    """The synchronous sweep for clean-up code with no event loop."""
    import time

    ended: set[int] = set()
    for _ in range(200):
        pids = find()
        if not pids:
            break
        ended.update(pids)
        _signal_all(pids, signal.SIGKILL)
        time.sleep(0.02)
    return len(ended)
