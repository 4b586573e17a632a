"""A GCE instance's sandbox machine: its directory, its own loopback address, its SSH server.

GCE gives a VM an external natIP and SSH on port 22 of it, so each running instance gets its
own address in 127.64.0.0-127.127.255.255 (all of 127/8 is loopback on Linux) and its server
listens there on the sim's GCE SSH port; several sims can share the port that way.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
from collections.abc import Callable
from pathlib import Path

import asyncssh

from sim.gce import sshusers
from sim.gce.store import InstanceRecord
from sim.sandbox import processes
from sim.sandbox.layout import MachineLayout
from sim.sandbox.ssh import MachineSSH, end_machine
from sim.views import machine_path

log = logging.getLogger(__name__)
_ADDRESS_TRIES = 50


def random_address() -> str:
    return f"127.{random.randint(64, 127)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def default_ssh_port() -> int:
    """22 where this process may bind it (root, CAP_NET_BIND_SERVICE), else 2222."""
    for _ in range(5):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind((random_address(), 22))
            return 22
        except PermissionError:
            return 2222
        except OSError:
            continue  # that address is taken (or a host sshd holds 0.0.0.0:22): try another
        finally:
            probe.close()
    return 2222


class GceMachines:
    """Runs the instances' sandboxes; the lifecycle (instances.py) says when."""

    def __init__(self, root: Path, *, namespace: bool, ssh_port: int) -> None:
        self.root = root
        self.namespace = namespace
        self.ssh_port = ssh_port
        self._ssh: dict[int, MachineSSH] = {}

    def layout(self, instance_id: int) -> MachineLayout:
        return MachineLayout(instance_id, (self.root / str(instance_id)).resolve(), self.namespace)

    def home_root(self, instance_id: int) -> Path:
        return self.layout(instance_id).root / "home"

    def bin_dir(self, instance_id: int) -> Path:
        return self.layout(instance_id).root / "bin"

    def running(self, instance_id: int) -> bool:
        return instance_id in self._ssh

    def pids(self, instance_id: int) -> list[int]:
        return processes.machine_pids(self.layout(instance_id))

    def prepare(self, record: InstanceRecord) -> None:
        """The machine's disk: workspace, homes of the metadata users, the sudo/chown shims."""
        self.layout(record.id).create()
        sshusers.install_shims(self.bin_dir(record.id))
        sshusers.prepare_homes(
            self.home_root(record.id), sshusers.users_from_metadata(record.metadata)
        )

    def environment(self, record: InstanceRecord, user: str) -> dict[str, str]:
        layout = self.layout(record.id)
        home = self.home_root(record.id) / user
        home.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": f"{self.bin_dir(record.id)}:{machine_path()}",
            "HOME": str(home),
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "DUMONT_WORKSPACE": layout.visible_workspace,
            "DATA_DIRECTORY": layout.visible_workspace + "/",
        }

    async def up(self, record: InstanceRecord, current: Callable[[], InstanceRecord | None]) -> str:
        """Start the machine's SSH server on its address (the saved one if still free, else a
        new one); returns the address. `current` gives the live record at each login."""
        self.prepare(record)

        def users() -> dict[str, set[str]]:
            live = current()
            return sshusers.users_from_metadata(live.metadata) if live else {}

        def authorize(username: str, key: str) -> bool:
            return sshusers.may_log_in(users(), username, key)

        def own_keys(username: str) -> asyncssh.SSHAuthorizedKeys | None:
            return sshusers.own_keys(self.home_root(record.id), users(), username)

        server = MachineSSH(
            self.layout(record.id),
            lambda: self.environment(record, "root"),
            set,
            authorize=authorize,
            user_environment=lambda user: self.environment(record, user),
            user_keys=own_keys,
        )
        self._ssh[record.id] = server
        address = record.address or random_address()
        for _ in range(_ADDRESS_TRIES):
            try:
                await server.start(self.ssh_port, address)
                return address
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    self._ssh.pop(record.id, None)
                    raise
                log.info("instance %s: %s:%s is taken", record.name, address, self.ssh_port)
                address = random_address()
        self._ssh.pop(record.id, None)
        raise OSError(errno.EADDRINUSE, "no free loopback address for the machine")

    async def down(self, instance_id: int, grace: float) -> None:
        """No new logins, every process ended, open sessions dropped."""
        await end_machine(self.layout(instance_id), self._ssh.pop(instance_id, None), grace)

    async def shutdown(self, grace: float) -> None:
        for instance_id in list(self._ssh):
            await self.down(instance_id, grace)
