"""A machine's SSH server: exec, interactive shell with a pty, SFTP and local port forwarding
to the machine's own loopback (forwarding.py), over asyncssh.

Only the public keys currently attached to the machine are let in (checked on each login, so a
key attached while running works at once); any username will do, as on vast.ai. A machine may
instead check (username, key) pairs itself (GCE's metadata users) and give each login user its
own environment. The login user's own `~/.ssh/authorized_keys` lets keys in too, with their
OpenSSH options (authorized.py): a forced command runs instead of whatever the client asked
for (exec, shell, or a subsystem; `sftp` is refused on such a key), with
`SSH_ORIGINAL_COMMAND` set. Every session is a real subprocess started through
`processes.spawn`, so it sees the machine's /workspace and carries the machine's markers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pty
import signal
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import Any, cast

import asyncssh
from asyncssh.channel import SSHChannel
from asyncssh.sftp import MIN_SFTP_VERSION

from sim.sandbox import authorized, forwarding, processes
from sim.sandbox.activity import InteractiveActivity
from sim.sandbox.layout import MachineLayout

log = logging.getLogger(__name__)

# How long output may still arrive after the command exited; a daemon that kept the session's
# stdout open must not hold the session forever.
_OUTPUT_GRACE = 0.5
_CLIENT_ENV = ("LANG", "LC_")


def normalise_public_key(public_key: str) -> str:
    """The key in OpenSSH form without its comment; raises ValueError when it is not a key."""
    try:
        key = asyncssh.import_public_key(public_key.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(f"not an OpenSSH public key: {exc}") from exc
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def load_host_key(layout: MachineLayout) -> asyncssh.SSHKey:
    """The machine's persistent host key, generated on first boot."""
    if layout.host_key.exists():
        return asyncssh.read_private_key(str(layout.host_key))
    key = asyncssh.generate_private_key("ssh-ed25519")
    layout.sim_dir.mkdir(parents=True, exist_ok=True)
    key.write_private_key(str(layout.host_key))
    os.chmod(layout.host_key, 0o600)
    return key


def _set_winsize(fd: int, width: int, height: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class _Auth(asyncssh.SSHServer):
    def __init__(self, machine: MachineSSH) -> None:
        self._machine = machine
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._machine.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._machine.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        # The user's own file, read at each login; asyncssh tries it before validate_public_key.
        # Set even when None: a client may try another username on the same connection.
        keys = self._machine.user_keys(username) if self._machine.user_keys else None
        if self._conn is not None:
            self._conn.set_authorized_keys(keys)
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        offered = " ".join(key.export_public_key("openssh").decode().split()[:2])
        if self._machine.authorize is not None:
            return self._machine.authorize(username, offered)
        return offered in self._machine.authorized_keys()

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Awaitable[asyncssh.SSHTCPSession[bytes]]:
        # `ssh -L` / `-W`: only to the machine's own loopback, reached inside its network.
        return forwarding.connection_requested(self._machine.layout, dest_host, dest_port)

    def session_requested(self) -> asyncssh.SSHServerProcess[bytes]:
        forced = self._conn.get_key_option(authorized.FORCED_COMMAND) if self._conn else None
        command = forced if isinstance(forced, str) else None
        layout = self._machine.layout

        async def run(process: asyncssh.SSHServerProcess[bytes]) -> None:
            await self._machine.session(process, command)

        def sftp(chan: SSHChannel[bytes]) -> asyncssh.SFTPServer:
            return _MappedSFTP(cast(asyncssh.SSHServerChannel[bytes], chan), layout)

        # A forced command gets no built-in SFTP or scp server, so an exec (scp -O's too), a
        # shell or a subsystem all run the command; asyncssh then refuses an `sftp` subsystem
        # outright (it cannot hand one to the command).
        return asyncssh.SSHServerProcess(
            run, None if command is not None else sftp, MIN_SFTP_VERSION, command is None
        )


class _MappedSFTP(asyncssh.SFTPServer):
    """SFTP with the paths the machine's commands see (/workspace is the machine's own)."""

    def __init__(self, chan: asyncssh.SSHServerChannel, layout: MachineLayout) -> None:
        super().__init__(chan)
        self._layout = layout

    def map_path(self, path: bytes) -> bytes:
        return os.fsencode(self._layout.to_host(os.fsdecode(path) or "."))

    def reverse_map_path(self, path: bytes) -> bytes:
        return os.fsencode(self._layout.to_visible(os.fsdecode(path)))

    def exit(self) -> None:
        # sshd reports the sftp-server's exit status; OpenSSH's scp fails without one.
        with contextlib.suppress(OSError, asyncssh.Error):
            self.channel.exit(0)


class MachineSSH:
    """One machine's SSH listener and its open connections."""

    def __init__(
        self,
        layout: MachineLayout,
        environment: Callable[[], dict[str, str]],
        authorized_keys: Callable[[], set[str]],
        *,
        authorize: Callable[[str, str], bool] | None = None,
        user_environment: Callable[[str], dict[str, str]] | None = None,
        user_keys: Callable[[str], asyncssh.SSHAuthorizedKeys | None] | None = None,
    ) -> None:
        self.layout = layout
        self.environment = environment
        self.authorized_keys = authorized_keys
        # (username, "ssh-ed25519 AAAA...") -> allowed; replaces the any-username key check.
        self.authorize = authorize
        # The login user's environment (USER, HOME, ...), replacing `environment`.
        self.user_environment = user_environment
        # username -> the keys in that login user's own authorized_keys (None: it has none).
        self.user_keys = user_keys
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.activity = InteractiveActivity(layout)
        self._acceptor: asyncssh.SSHAcceptor | None = None

    async def start(self, port: int, host: str = "127.0.0.1") -> int:
        """Listen on `host`:`port` (0: any free port); returns the port."""
        self.activity.write()
        self._acceptor = await asyncssh.listen(
            host,
            port,
            server_host_keys=[load_host_key(self.layout)],
            server_factory=lambda: _Auth(self),  # its session_requested makes each session
            encoding=None,
            line_editor=False,
            keepalive_interval=15,
        )
        return int(self._acceptor.get_port())

    async def stop_listening(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    async def disconnect(self) -> None:
        """Drop every open session, as a machine going down does."""
        for conn in list(self.connections):
            conn.close()
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 2)
        self.connections.clear()

    def _env(self, process: asyncssh.SSHServerProcess[bytes]) -> dict[str, str]:
        if self.user_environment is not None:
            env = dict(self.user_environment(str(process.get_extra_info("username") or "")))
        else:
            env = dict(self.environment())
        env["DUMONT_SIM_SSH_FILE"] = str(self.layout.ssh_file)
        for name, value in (process.env or {}).items():
            name_text = os.fsdecode(name) if isinstance(name, bytes) else str(name)
            if name_text.startswith(_CLIENT_ENV):
                env[name_text] = os.fsdecode(value) if isinstance(value, bytes) else str(value)
        return env

    async def session(self, process: asyncssh.SSHServerProcess[bytes], forced: str | None) -> None:
        """Run what the client asked for, or the key's forced command (`forced`) in its place."""
        try:
            env = self._env(process)
            command = process.command
            if forced is not None:
                original = process.command if process.command is not None else process.subsystem
                if original is not None:
                    env["SSH_ORIGINAL_COMMAND"] = original
                command = forced
            elif process.subsystem:
                process.stderr.write(f"subsystem {process.subsystem} is not supported\n".encode())
                process.exit(1)
                return
            if process.get_terminal_type():
                status = await self._run_with_pty(process, command, env)
            else:
                status = await self._run_with_pipes(process, command, env)
            process.exit(status)
        except (asyncssh.Error, OSError, ConnectionError) as exc:
            log.debug("machine %s: session ended: %s", self.layout.instance_id, exc)
            process.close()

    @staticmethod
    def _argv(command: str | None, interactive: bool) -> list[str]:
        if command is not None:
            return ["/bin/bash", "-c", command]
        return ["/bin/bash", "-i"] if interactive else ["/bin/bash"]

    async def _run_with_pipes(
        self, process: asyncssh.SSHServerProcess[bytes], command: str | None, env: dict[str, str]
    ) -> int:
        proc = await processes.spawn(self.layout, self._argv(command, False), env)
        assert proc.stdin and proc.stdout and proc.stderr
        outputs = [
            asyncio.create_task(_copy_out(proc.stdout.read, process.stdout)),
            asyncio.create_task(_copy_out(proc.stderr.read, process.stderr)),
        ]
        feeding = asyncio.create_task(_feed_pipe(process, proc.stdin))
        try:
            status = await proc.wait()
            await _finish(outputs)
        finally:
            feeding.cancel()
        return _exit_status(status)

    async def _run_with_pty(
        self, process: asyncssh.SSHServerProcess[bytes], command: str | None, env: dict[str, str]
    ) -> int:
        master, slave = pty.openpty()
        width, height, _, _ = process.get_terminal_size()
        _set_winsize(master, width or 80, height or 24)
        env["TERM"] = process.get_terminal_type() or "xterm"
        try:
            proc = await processes.spawn(
                self.layout,
                self._argv(command, True),
                env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                tty=True,
            )
        finally:
            os.close(slave)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(master, "rb", buffering=0)
        )
        output = asyncio.create_task(_copy_out(reader.read, process.stdout))
        # A pty session is interactive: sshd's terminal would show it, typing in it moves it.
        self.activity.opened()
        feeding = asyncio.create_task(
            _feed_pty(process, master, proc.pid, self.activity.input_received)
        )
        try:
            status = await proc.wait()
            await _finish([output])
        finally:
            self.activity.closed()
            feeding.cancel()
            transport.close()
        return _exit_status(status)


async def end_machine(layout: MachineLayout, server: MachineSSH | None, grace: float) -> None:
    """End a machine: no new logins, every process gone (TERM, then KILL after `grace`), open
    sessions dropped last, so a process's last output still reaches its client."""
    if server is not None:
        await server.stop_listening()
    await processes.end_processes(lambda: processes.machine_pids(layout), grace)
    if server is not None:
        await server.disconnect()
    await processes.end_processes(lambda: processes.machine_pids(layout), 0)


async def _copy_out(read: Callable[[int], Any], sink: asyncssh.SSHWriter[bytes]) -> None:
    open_ = True
    while True:
        try:
            data = await read(65536)
        except OSError:  # EIO from a pty master once the slave side is gone
            return
        if not data:
            return
        if not open_:
            continue  # the client is gone: drain the pipe so the command is not blocked on it
        try:
            sink.write(data)
            await sink.drain()
        except (OSError, asyncssh.Error):  # the client closed the channel (BrokenPipeError)
            open_ = False


async def _finish(outputs: list[asyncio.Task[None]]) -> None:
    _, pending = await asyncio.wait(outputs, timeout=_OUTPUT_GRACE)
    for task in pending:
        task.cancel()


async def _feed_pipe(
    process: asyncssh.SSHServerProcess[bytes], stdin: asyncio.StreamWriter
) -> None:
    try:
        while True:
            try:
                data = await process.stdin.read(65536)
            except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            if not data:
                break
            stdin.write(data)
            await stdin.drain()
    except (ConnectionError, asyncssh.Error):
        pass
    finally:
        with contextlib.suppress(Exception):
            stdin.close()


async def _feed_pty(
    process: asyncssh.SSHServerProcess[bytes],
    master: int,
    pid: int,
    on_input: Callable[[], None],
) -> None:
    try:
        while True:
            try:
                data = await process.stdin.read(65536)
            except asyncssh.TerminalSizeChanged as change:
                _set_winsize(master, change.width, change.height)
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            if not data:
                break
            on_input()
            await _write_all(master, data)
        # A pty cannot be half-closed: after the client's EOF the shell keeps running until
        # the channel itself goes away.
        await process.channel.wait_closed()
    except (ConnectionError, OSError, asyncssh.Error):
        pass
    # The client went away: hang up the shell as sshd does.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGHUP)


async def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        view = view[written:]


def _exit_status(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode
