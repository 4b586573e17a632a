"""Tasks a conversation with the engine starts and must see through: the store's answers for
one pack must not hold up the next message, yet the first of them to fail ends the run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed = asyncio.Event()
        self._failure: BaseException | None = None

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None or self._failure is not None:
            return
        self._failure = task.exception()
        self._failed.set()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def first(self, work: Awaitable[T]) -> T:
        """`work`'s result, unless a task fails before it is ready: then that task's error."""
        if self._failure is not None and asyncio.iscoroutine(work):
            work.close()  # never started: closed, not left for the collector to warn about
        self._raise_failure()
        job = asyncio.ensure_future(work)
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait({job, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not job.done():
                job.cancel()
        self._raise_failure()
        return job.result()

    async def settle(self) -> None:
        """Wait for every task (those they start too); raise the first failure."""
        while self._tasks and self._failure is None:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_EXCEPTION)
        self._raise_failure()

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
