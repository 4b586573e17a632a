"""Dumont's own SSH key: activities use it to reach machines; the provider installs it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh


@dataclass(frozen=True)
class SshIdentity:
    private_key_path: Path
    public_key: str  # OpenSSH one-line form

    def load(self) -> asyncssh.SSHKey:
        return asyncssh.read_private_key(str(self.private_key_path))


def ensure_identity(private_key_path: Path) -> SshIdentity:
    """Load the key at `private_key_path`, creating an ed25519 key (mode 600) the first time."""
    if not private_key_path.exists():
        private_key_path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="dumont-control-plane")
        tmp = private_key_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        os.replace(tmp, private_key_path)
        private_key_path.with_suffix(".pub").write_bytes(key.export_public_key())
    key = asyncssh.read_private_key(str(private_key_path))
    public = key.export_public_key().decode().strip()
    return SshIdentity(private_key_path=private_key_path, public_key=public)


class MachineUnreachable(RuntimeError):
    """The machine did not answer SSH with Dumont's key."""


@contextlib.asynccontextmanager
async def connect_machine(
    identity: SshIdentity, host: str, port: int, user: str, connect_seconds: float = 30.0
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """An SSH session to a machine as Dumont, logged in as `user` (the instance's `ssh_user`;
    no default: a provider other than vast may refuse root). Host keys are not checked: a
    fresh instance has a fresh key, and the provider's API is what vouches for the address."""
    try:
        conn = await asyncssh.connect(
            host,
            port,
            username=user,
            client_keys=[identity.load()],
            known_hosts=None,
            agent_path=None,
            config=None,
            connect_timeout=connect_seconds,
            keepalive_interval=15,
        )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise MachineUnreachable(f"cannot reach {host}:{port} over SSH: {exc}") from exc
    try:
        yield conn
    finally:
        conn.close()
