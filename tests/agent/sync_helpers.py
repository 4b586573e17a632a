"""A sim machine as the standby of a sync, reached through a TCP gate the test controls: it
forwards to the machine's SSH server, holds connections (a target that accepts TCP and never
answers), or is closed (connection refused)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import asyncssh

from tests.agent.test_install import SimMachine, sim_machine
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import new_key


class TcpGate:
    """127.0.0.1:port -> 127.0.0.1:upstream, with modes "forward", "hold" and "closed"."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.mode = "forward"
        self.accepted = 0
        self.held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = self._listen(0)
        self.port = int(self._listener.getsockname()[1])

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.accepted += 1
                if self.mode == "hold":
                    self.held.append(client)
                    continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def hold(self) -> None:
        self.mode = "hold"

    def forward(self) -> None:
        """New connections go through again (held ones stay held)."""
        self.mode = "forward"
        if self._listener.fileno() == -1:
            self._listener = self._listen(self.port)

    def close(self) -> None:
        """Refuse connections: nothing listens on the port any more."""
        try:  # wakes the accepting thread (a bare close leaves its accept() listening)
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def open_held(self) -> int:
        """Held connections the client has not given up on yet."""
        still = 0
        for conn in self.held:
            try:
                conn.setblocking(False)
                if conn.recv(65536, socket.MSG_PEEK) == b"":
                    continue  # the client closed it
            except BlockingIOError:
                pass
            except OSError:
                continue
            still += 1
        return still

    def stop(self) -> None:
        self.close()
        for conn in self.held:
            conn.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Standby:
    """A sim machine whose root accepts the sync key, its workspace, and the agent's files."""

    def __init__(self, machine: SimMachine, key: asyncssh.SSHKey, agent_dir: Path) -> None:
        self.machine = machine
        self.key = key
        self.agent_dir = agent_dir
        self.gate = TcpGate(machine.port)

    @property
    def workspace(self) -> Path:
        """Where the pushed files land: the sim runs commands in the machine's workspace."""
        return self.machine.layout.workspace

    @property
    def sync_file(self) -> Path:
        return self.agent_dir / "sync.json"

    def status(self) -> dict[str, Any]:
        return dict(json.loads((self.agent_dir / "sync-status.json").read_text()))

    def write_sync_file(self, workspace: Path, **fields: Any) -> None:
        sync = {
            "machine_id": "m-sync",
            "workspace": str(workspace),
            "target": {"host": "127.0.0.1", "port": self.gate.port, "user": "root"},
            "key_file": str(self.agent_dir / "sync" / "id_ed25519"),
            "known_hosts_file": str(self.agent_dir / "sync" / "known_hosts"),
            "interval_seconds": 30,
            "excludes": ["*.tmp"],
            **fields,
        }
        self.sync_file.write_text(json.dumps(sync))


async def standby(sim: SimHandle, agent_dir: Path) -> Standby:
    key = new_key()
    machine = await sim_machine(sim, key)
    (agent_dir / "sync").mkdir(parents=True)
    key_file = agent_dir / "sync" / "id_ed25519"
    key_file.write_bytes(key.export_private_key("openssh"))
    key_file.chmod(0o600)
    return Standby(machine, key, agent_dir)


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under root."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def lock_waiters(lock_file: Path) -> list[int]:
    """Pids blocked waiting for a flock on this file (/proc/locks' `->` lines)."""
    inode = os.stat(lock_file).st_ino
    waiters = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields:
            at = fields.index("->")
            pid, device_inode = int(fields[at + 4]), fields[at + 5]
            if int(device_inode.rsplit(":", 1)[1]) == inode:
                waiters.append(pid)
    return waiters


def lock_is_held(lock_file: Path) -> bool:
    with open(lock_file, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False
