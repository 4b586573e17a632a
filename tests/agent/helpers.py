"""Small helpers for the agent tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], object], within: float = 30.0) -> None:
    """Wait until condition() is true; fail with its name after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"never happened within {within}s: {condition}")
        await asyncio.sleep(0.05)
