"""Runs child processes, each in its own process group with its output in a log file.

Starting waits until each child is ready; watching returns when one dies; stopping terminates
every group (newest first), waits a grace period, then kills what is left.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

ReadyCheck = Callable[[], bool]


def tcp_answers(host: str, port: int) -> ReadyCheck:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def http_answers(url: str) -> ReadyCheck:
    """Ready once the URL answers with anything but a server error."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code < 500
        except httpx.HTTPError:
            return False

    return check


@dataclass
class ChildSpec:
    name: str  # also the log file's name
    argv: list[str]
    env: dict[str, str]
    ready: ReadyCheck | None = None  # None: ready as soon as it runs
    cwd: Path | None = None


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int  # where this run's output starts in the (appended) log

    @property
    def name(self) -> str:
        return self.spec.name

    def log_tail(self, lines: int = 20) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(self.log_offset)
                text = fh.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


class ChildFailed(Exception):
    """A child exited, or was not ready in time."""

    def __init__(self, child: Child, message: str) -> None:
        super().__init__(message)
        self.child = child


def _die_with_parent() -> None:
    """In the child, before exec: its own process group, and SIGTERM if the supervisor dies
    without stopping it (e.g. SIGKILL), so a crash never leaves a stack running."""
    os.setsid()
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Supervisor:
    log_dir: Path
    grace_seconds: float = 15.0  # the worker drains activities for up to 10 s
    children: list[Child] = field(default_factory=list)

    def start(self, spec: ChildSpec) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        with log_path.open("ab") as log:
            log.write(f"--- started {datetime.now(UTC).isoformat()} ---\n".encode())
            log.flush()
            offset = log.tell()
            process = subprocess.Popen(
                spec.argv,
                env=spec.env,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        child = Child(spec=spec, process=process, log_path=log_path, log_offset=offset)
        self.children.append(child)
        return child

    def wait_ready(self, children: Sequence[Child], timeout: float) -> None:
        """Block until every child's check passes; ChildFailed if one exits or times out."""
        pending = [c for c in children if c.spec.ready is not None]
        deadline = time.monotonic() + timeout
        while True:
            self.raise_if_any_exited()
            pending = [c for c in pending if not (c.spec.ready and c.spec.ready())]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ChildFailed(pending[0], f"{pending[0].name} was not ready in {timeout:.0f} s")
            time.sleep(0.1)

    def raise_if_any_exited(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise ChildFailed(child, f"{child.name} exited with code {code}")

    def watch(self, interval: float = 0.5) -> None:
        """Block while every child runs; ChildFailed names the first that exits."""
        while True:
            self.raise_if_any_exited()
            time.sleep(interval)

    def stop_all(self) -> None:
        """Terminate every child's process group, newest first, then kill stragglers."""
        for child in reversed(self.children):
            self._signal_group(child, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_seconds
            while child.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            # Kill the whole group even when the leader exited: its helpers may linger.
            self._signal_group(child, signal.SIGKILL)
            child.process.wait()
        self.children.clear()

    @staticmethod
    def _signal_group(child: Child, sig: signal.Signals) -> None:
        try:
            os.killpg(child.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
