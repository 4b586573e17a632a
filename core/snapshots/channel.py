"""How the control plane talks to an engine: JSON lines over a process's stdin/stdout, the
process being on a machine (one SSH session) or local (tests, benchmarks).

On a machine, the engine goes up as one zip file at the head of the session's stdin, kept there
named by its content and run by a few lines of bootstrap in the same SSH exec (one session, one
interpreter start), so it is always the control plane's own version and never needs an agent
install.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import shlex
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import asyncssh

ENGINE_PACKAGE = Path(__file__).resolve().parents[2] / "agent" / "snapshot"
_LINE_LIMIT = 256 * 1024 * 1024
_STDERR_TAIL = 4000
REMOTE_DIR = '"${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/dumont-snapshot"'


class EngineGone(RuntimeError):
    """The engine process ended or could not be started; the message carries its stderr."""


class EngineChannel(Protocol):
    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None once the engine closed its stdout."""
        ...

    async def finish(self) -> tuple[int | None, str]:
        """Close stdin, wait for the exit; (exit status, stderr tail)."""
        ...

    async def kill(self) -> None: ...


def _decode(line: bytes) -> dict[str, Any] | None:
    if not line:
        return None
    message = json.loads(line)
    if not isinstance(message, dict):
        raise EngineGone(f"the engine sent {line[:200]!r}")
    return message


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


@dataclass
class _Tail:
    text: str = ""

    def add(self, chunk: str) -> None:
        self.text = (self.text + chunk)[-_STDERR_TAIL:]


class LocalEngine:
    """The engine as a local subprocess (`python -m agent.snapshot`)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._stderr = _Tail()
        self._stderr_task = asyncio.create_task(self._drain())

    @classmethod
    async def start(
        cls, mode: str, workspace: str, extra: Sequence[str] = (), python: str = sys.executable
    ) -> LocalEngine:
        process = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "agent.snapshot",
            mode,
            "--workspace",
            workspace,
            *extra,
            cwd=str(ENGINE_PACKAGE.parents[1]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        return cls(process)

    async def _drain(self) -> None:
        assert self._process.stderr is not None
        while chunk := await self._process.stderr.read(65536):
            self._stderr.add(chunk.decode(errors="replace"))

    @property
    def pid(self) -> int:
        return self._process.pid

    async def send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(_encode(message))
            await self._process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise EngineGone(f"the engine stopped reading: {self._stderr.text}") from exc

    async def receive(self) -> dict[str, Any] | None:
        assert self._process.stdout is not None
        return _decode(await self._process.stdout.readline())

    async def finish(self) -> tuple[int | None, str]:
        assert self._process.stdin is not None
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        code = await self._process.wait()
        await self._stderr_task
        return code, self._stderr.text

    async def kill(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        self._stderr_task.cancel()


@lru_cache(maxsize=1)
def engine_bundle() -> tuple[str, bytes]:
    """(content digest, zip) of the engine: agent/snapshot/*.py and a __main__ that runs it."""
    files = {"agent/__init__.py": b"", "__main__.py": (ENGINE_PACKAGE / "__main__.py").read_bytes()}
    for path in sorted(ENGINE_PACKAGE.glob("*.py")):
        files[f"agent/snapshot/{path.name}"] = path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest()[:16], data


# Runs on the machine: read the engine's zip (argv[2] bytes) from stdin, keep it under argv[1]
# (named by its content, so a copy there is the same), and run it in this very process, whose
# stdin then carries the control plane's messages. Python 3.8 syntax: machines have old ones.
_BOOTSTRAP = """import os, runpy, sys
target, size = sys.argv[1], int(sys.argv[2])
bundle = sys.stdin.buffer.read(size)
if len(bundle) != size:
    sys.exit("the snapshot engine did not arrive whole")
if not os.path.exists(target):
    part = "%s.%d" % (target, os.getpid())
    with open(part, "wb") as handle:
        handle.write(bundle)
    os.replace(part, target)
sys.argv = [target] + sys.argv[3:]
runpy.run_path(target, run_name="__main__")
"""


class SshEngine:
    """The engine on a machine, in one SSH session of an open connection."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process = process
        self._stderr = _Tail()
        self._stderr_task = asyncio.create_task(self._drain())

    @classmethod
    async def start(
        cls,
        conn: asyncssh.SSHClientConnection,
        mode: str,
        workspace: str,
        extra: Sequence[str] = (),
    ) -> SshEngine:
        digest, bundle = engine_bundle()
        target = f"{REMOTE_DIR}/engine-{digest}.pyz"
        # One exec: the bundle leads the session's stdin, the engine's messages follow it.
        command = " ".join(
            [f"mkdir -p {REMOTE_DIR} && exec python3 -c", shlex.quote(_BOOTSTRAP), target]
            + [str(len(bundle)), shlex.quote(mode), "--workspace", shlex.quote(workspace)]
            + [shlex.quote(arg) for arg in extra]
        )
        try:
            process = await conn.create_process(command, encoding=None)
            process.stdin.write(bundle)
        except (asyncssh.Error, OSError) as exc:
            raise EngineGone(f"starting the snapshot engine: {exc}") from exc
        return cls(process)

    async def _drain(self) -> None:
        while chunk := await self._process.stderr.read(65536):
            self._stderr.add(chunk.decode(errors="replace"))

    async def send(self, message: dict[str, Any]) -> None:
        try:
            self._process.stdin.write(_encode(message))
            await self._process.stdin.drain()
        except (asyncssh.Error, OSError) as exc:
            raise EngineGone(f"the engine stopped reading: {exc} {self._stderr.text}") from exc

    async def receive(self) -> dict[str, Any] | None:
        try:
            return _decode(await self._process.stdout.readline())
        except (asyncssh.Error, OSError) as exc:
            raise EngineGone(f"the SSH session broke: {exc}") from exc

    async def finish(self) -> tuple[int | None, str]:
        with contextlib.suppress(asyncssh.Error, OSError):
            self._process.stdin.write_eof()
        await self._process.wait_closed()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
        return self._process.exit_status, self._stderr.text

    async def kill(self) -> None:
        # Closing the session closes the engine's stdin: it stops at once (and exits).
        self._process.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._process.wait_closed()
        self._stderr_task.cancel()
