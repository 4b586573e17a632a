"""The push of the workspace to the CPU standby: `rsync -a --delete` over SSH, every interval,
in a thread of its own so that a slow or hung sync never delays a heartbeat, at the lowest CPU
and I/O priority so that it never slows the user's work.

One sync at a time per machine: the loop and `--once` (a migration's final sync, run by the
control plane) both hold `sync.lock` (flock) for the whole attempt, so `--once` waits for a
sync in progress and then runs its own.

python3 -m agent.sync --config <agent dir>/sync.json --once
    -> {"completed_at": iso, "seconds": float, "bytes_sent": int} on stdout (exit 0), or the
       error on stderr (exit 1)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from agent.sync_config import (
    LOCK_FILE,
    STATUS_FILE,
    SYNC_FILE,
    SyncConfig,
    SyncConfigError,
    agent_dir_of,
)
from agent.sync_status import SyncStatus, read_status, write_status

log = logging.getLogger("dumont.agent.sync")

# rsync: 24 = some files vanished while it ran (a workload writing temp files): the rest is
# synced, which is a success.
_OK_EXITS = (0, 24)
# No data moving for this long ends the attempt (ssh's own keepalive catches a dead link).
IO_TIMEOUT_SECONDS = 120
CONNECT_TIMEOUT_SECONDS = 10
# How often an agent without a sync file looks for one.
IDLE_POLL_SECONDS = 5.0
_BYTES_SENT = re.compile(r"^Total bytes sent:\s*([0-9][0-9,.']*)", re.MULTILINE)


class SyncError(Exception):
    pass


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _quoted(word: str) -> str:
    # rsync splits its -e string on spaces and honours quotes; our words have no spaces (the
    # config refuses them) but say so explicitly rather than rely on it.
    return word if not re.search(r"[\s'\"]", word) else "'" + word.replace("'", "''") + "'"


def ssh_command(config: SyncConfig) -> str:
    words = ["ssh", "-i", config.key_file, "-p", str(config.target.port)]
    for option in (
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=accept-new",
        f"UserKnownHostsFile={config.known_hosts_file}",
        f"ConnectTimeout={CONNECT_TIMEOUT_SECONDS}",
        "ServerAliveInterval=10",
    ):
        words += ["-o", option]
    return " ".join(_quoted(word) for word in words)


def _low_priority() -> list[str]:
    prefix = []
    if shutil.which("nice"):
        prefix += ["nice", "-n", "19"]
    if shutil.which("ionice"):
        # Best effort at its lowest, not "idle": a disk-bound workload must not starve it.
        prefix += ["ionice", "-c", "2", "-n", "7"]
    return prefix


def rsync_command(config: SyncConfig) -> list[str]:
    """The argv (no shell: the excludes are the user's words)."""
    command = _low_priority() + ["rsync", "-a", "--delete", "--partial", "--numeric-ids"]
    command += ["--stats", f"--timeout={IO_TIMEOUT_SECONDS}"]
    command += [f"--exclude={pattern}" for pattern in config.excludes]
    command += ["-e", ssh_command(config), config.workspace + "/", config.target.destination]
    return command


def bytes_sent(stats: str) -> int | None:
    match = _BYTES_SENT.search(stats)
    if match is None:
        return None
    digits = re.sub(r"\D", "", match.group(1))
    return int(digits) if digits else None


class Syncer:
    """Runs one sync under the lock and records its outcome; `terminate` ends one in flight."""

    def __init__(self, agent_dir: str, clock: Callable[[], datetime] = _utc_now) -> None:
        self.agent_dir = agent_dir
        self.clock = clock
        self._process: subprocess.Popen[bytes] | None = None
        self._guard = threading.Lock()
        self._terminated = False

    def path(self, name: str) -> str:
        return os.path.join(self.agent_dir, name)

    def sync(self, config: SyncConfig) -> SyncStatus:
        """One attempt, after any other in progress; raises SyncError with the reason, after
        recording it."""
        with open(self.path(LOCK_FILE), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            status_file = self.path(STATUS_FILE)
            status = read_status(status_file, str(config.target))
            started = time.monotonic()
            try:
                sent = self._rsync(config)
            except SyncError as exc:
                write_status(status_file, status.failed(self.clock(), str(exc)))
                raise
            done = status.succeeded(self.clock(), time.monotonic() - started, sent)
            write_status(status_file, done)
            return done

    def record_bad_config(self, error: str) -> None:
        """A sync file that cannot be used counts as a failed attempt (under no target)."""
        with open(self.path(LOCK_FILE), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            status_file = self.path(STATUS_FILE)
            write_status(status_file, read_status(status_file, None).failed(self.clock(), error))

    def _rsync(self, config: SyncConfig) -> int | None:
        if not os.path.isdir(config.workspace):
            # Never push an absent workspace: --delete would empty the standby.
            raise SyncError(f"the workspace {config.workspace} is not a directory")
        with self._guard:
            if self._terminated:
                raise SyncError("the agent is stopping")
            try:
                process = subprocess.Popen(
                    rsync_command(config),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except OSError as exc:
                raise SyncError(f"cannot run rsync: {exc}") from None
            self._process = process
        try:
            out, err = process.communicate()
        finally:
            with self._guard:
                self._process = None
        if process.returncode not in _OK_EXITS:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            detail = "; ".join(line.strip() for line in lines[-5:] if line.strip())
            raise SyncError(f"rsync exited {process.returncode}: {detail}".rstrip(": "))
        return bytes_sent(out.decode("utf-8", "replace"))

    def terminate(self) -> None:
        with self._guard:
            self._terminated = True
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()


class SyncLoop:
    """The agent's sync thread: re-reads sync.json every tick (absent: idle), syncs, sleeps
    what is left of the interval. A sync longer than the interval delays the next one."""

    def __init__(self, agent_dir: str, idle_poll_seconds: float = IDLE_POLL_SECONDS) -> None:
        self.syncer = Syncer(agent_dir)
        self._idle_poll = idle_poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dumont-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait_seconds: float = 5.0) -> None:
        self._stop.set()
        self.syncer.terminate()
        self._thread.join(wait_seconds)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                interval = self.tick()
            except Exception:  # the loop outlives anything one attempt does
                log.exception("the sync tick failed")
                interval = self._idle_poll
            self._stop.wait(max(0.0, started + interval - time.monotonic()))

    def tick(self) -> float:
        """One sync if a sync file is there; returns the interval to the next tick."""
        try:
            config = SyncConfig.load(self.syncer.path(SYNC_FILE))
        except FileNotFoundError:
            return self._idle_poll
        except (OSError, SyncConfigError) as exc:
            log.error("%s", exc)
            self.syncer.record_bad_config(str(exc))
            return self._idle_poll
        try:
            done = self.syncer.sync(config)
            log.debug("synced to %s: %s bytes", config.target, done.last_bytes_sent)
        except SyncError as exc:
            log.warning("sync to %s failed: %s", config.target, exc)
        return config.interval_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m agent.sync", description=__doc__)
    parser.add_argument("--config", required=True, help="the agent's sync.json")
    parser.add_argument("--once", action="store_true", required=True, help="sync now, once")
    args = parser.parse_args(argv)
    try:
        config = SyncConfig.load(args.config)
    except (OSError, SyncConfigError) as exc:
        sys.stderr.write(f"no usable sync config: {exc}\n")
        return 1
    syncer = Syncer(agent_dir_of(args.config))
    try:
        done = syncer.sync(config)
    except SyncError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    result = {
        "completed_at": done.last_success_at,
        "seconds": done.last_duration_seconds,
        "bytes_sent": done.last_bytes_sent or 0,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
