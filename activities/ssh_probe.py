"""Does a machine answer SSH with Dumont's own key? The readiness test of every boot."""

from __future__ import annotations

import asyncio

import asyncssh


async def ssh_answers(
    host: str, port: int, *, username: str, key: asyncssh.SSHKey, limit_seconds: float
) -> str | None:
    """None when `true` ran over SSH; otherwise why not, in one line."""
    try:
        async with asyncio.timeout(limit_seconds):
            async with asyncssh.connect(
                host,
                port,
                username=username,
                client_keys=[key],
                known_hosts=None,  # a fresh machine has a fresh host key; the provider vouches
                agent_path=None,
                config=None,
                connect_timeout=limit_seconds,
            ) as conn:
                await conn.run("true", check=True)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return None
