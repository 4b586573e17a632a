"""The control plane's side of installing the agent on a machine over an open SSH connection.

This is the only module of `agent/` that imports asyncssh: the control plane imports it, and it
is never uploaded to machines (the agent itself uses only the standard library).

    await deploy_agent(conn, AgentConfig(machine_id=..., api_url=..., token=...))
"""

from __future__ import annotations

import asyncssh

from agent.config import AgentConfig
from agent.install import agent_archive, install_command

# What the install may take: stopping an old agent (≤ 10 s) and waiting for the new one.
INSTALL_TIMEOUT_SECONDS = 60.0


class AgentDeployError(RuntimeError):
    """The agent could not be installed or did not start; the message says why."""


async def deploy_agent(conn: asyncssh.SSHClientConnection, config: AgentConfig) -> str:
    """Install the agent and its config, (re)start it under its watchdog, in one command;
    returns the install directory. Idempotent. Raises AgentDeployError when it did not
    start, with the machine's own words."""
    try:
        result = await conn.run(
            install_command(),
            input=agent_archive(config.to_json().encode()),
            encoding=None,
            check=False,
            timeout=INSTALL_TIMEOUT_SECONDS,
        )
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise AgentDeployError(f"installing the agent: {exc}") from exc
    stdout = _text(result.stdout)
    if result.exit_status != 0:
        stderr = _text(result.stderr)
        detail = (stderr or stdout).strip()[-2000:]
        raise AgentDeployError(f"installing the agent failed (exit {result.exit_status}): {detail}")
    lines = stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("/"):
        raise AgentDeployError(f"installing the agent: unexpected answer {stdout[-500:]!r}")
    return lines[-1]


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
