"""The control plane's side of installing the agent on a machine over an open SSH connection.

This is the only module of `agent/` that imports asyncssh: the control plane imports it, and it
is never uploaded to machines (the agent itself uses only the standard library).

    await deploy_agent(conn, AgentConfig(machine_id=..., api_url=..., token=...))
"""

from __future__ import annotations

import posixpath

import asyncssh

from agent.config import AgentConfig
from agent.install import CONFIG, agent_files, choose_dir_command, install_command

# What the install may take: stopping an old agent (≤ 10 s) and waiting for the new one.
INSTALL_TIMEOUT_SECONDS = 60.0


class AgentDeployError(RuntimeError):
    """The agent could not be installed or did not start; the message says why."""


async def _run(conn: asyncssh.SSHClientConnection, command: str, what: str) -> str:
    try:
        result = await conn.run(command, check=False, timeout=INSTALL_TIMEOUT_SECONDS)
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise AgentDeployError(f"{what}: {exc}") from exc
    if result.exit_status != 0:
        detail = str(result.stderr or result.stdout or "").strip()[-2000:]
        raise AgentDeployError(f"{what} failed (exit {result.exit_status}): {detail}")
    return str(result.stdout or "")


async def _upload(
    conn: asyncssh.SSHClientConnection, install_dir: str, files: dict[str, bytes]
) -> None:
    try:
        async with conn.start_sftp_client() as sftp:
            for relative, content in files.items():
                path = posixpath.join(install_dir, relative)
                await sftp.makedirs(posixpath.dirname(path), exist_ok=True)
                # The config holds the token: created 600, and made so if it existed.
                attrs = asyncssh.SFTPAttrs(permissions=0o600 if relative == CONFIG else 0o644)
                async with sftp.open(path, "wb", attrs) as handle:
                    await handle.write(content)
                await sftp.chmod(path, attrs.permissions or 0o644)
    except (asyncssh.Error, OSError) as exc:
        raise AgentDeployError(f"uploading the agent: {exc}") from exc


async def deploy_agent(conn: asyncssh.SSHClientConnection, config: AgentConfig) -> str:
    """Upload the agent and its config, (re)start it under its watchdog; returns the install
    directory. Idempotent. Raises AgentDeployError when it did not start."""
    output = await _run(conn, choose_dir_command(), "choosing the install directory")
    lines = output.strip().splitlines()
    if not lines or not lines[-1].startswith("/"):
        raise AgentDeployError(f"choosing the install directory: unexpected answer {output!r}")
    install_dir = lines[-1]
    files = agent_files()
    files[CONFIG] = config.to_json().encode()
    await _upload(conn, install_dir, files)
    await _run(conn, install_command(install_dir), "starting the agent")
    return install_dir
