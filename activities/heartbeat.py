"""Heartbeats for activities that wait on something slow (SSH, the provider, the engine): a
background beat, so that a dead worker is noticed and a cancel reaches the activity even while
it is stuck in one long call."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from temporalio import activity

HEARTBEAT_SECONDS = 2.0


@contextlib.asynccontextmanager
async def heartbeating(details: Callable[[], Any] | None = None) -> AsyncIterator[None]:
    """Heartbeat every couple of seconds while the body runs, with what `details()` returns
    when it returns something."""

    async def beat() -> None:
        while True:
            detail = None if details is None else details()
            if detail is None:
                activity.heartbeat()
            else:
                activity.heartbeat(detail)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
