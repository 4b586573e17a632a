"""The hold queue: requests for a machine that is not up wait here, per machine and per
process, bounded by the endpoint's `max_pending_requests`, in arrival order. The first one
starts the machine's waker; when it is done every held request is released at once, in the
order they came, to be forwarded (or answered with why not). A client that disconnects while
held leaves the queue and no longer counts toward its limit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from api.gateway.answers import RETRY_QUEUE_FULL, RETRY_RESUME_FAILED, Refusal
from api.gateway.downstream import ClientGone
from api.gateway.routes import Route
from api.gateway.waker import WakeOutcome
from core.contracts.states import MachineState

log = logging.getLogger(__name__)

S = MachineState
# States whose requests wait for the machine (each ends up, paused or hibernated).
HOLDS = frozenset(
    {
        S.PAUSING, S.PAUSED, S.RESUMING, S.HIBERNATING, S.HIBERNATED, S.DELETED,
        S.WAKING, S.STARTING, S.RESTARTING,
    }
)  # fmt: skip

Wake = Callable[[Route, Callable[[], int]], Awaitable[WakeOutcome]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Release:
    route: Route
    resumed: bool
    held_ms: int  # from this request's arrival until it was released


@dataclass(slots=True)
class _Held:
    future: asyncio.Future[Release | Refusal]
    arrived: float


@dataclass(slots=True)
class _Queue:
    held: list[_Held] = field(default_factory=list)
    waker: asyncio.Task[None] | None = None


class Watched(Protocol):
    """The held client's side: it calls `on_gone` if the client disconnects."""

    def watch(self, on_gone: Callable[[], None]) -> None: ...


class Holds:
    def __init__(self, wake: Wake) -> None:
        self._wake = wake
        self._queues: dict[str, _Queue] = {}
        self.closing: Refusal | None = None  # set at shutdown: nothing is held any more
        self._watchers: list[tuple[str, int, asyncio.Future[None]]] = []

    def pending(self, machine_id: str) -> int:
        queue = self._queues.get(machine_id)
        return len(queue.held) if queue else 0

    async def until_pending(self, machine_id: str, count: int) -> None:
        """Until exactly `count` requests are held for the machine (for tests and benches)."""
        if self.pending(machine_id) == count:
            return
        future = asyncio.get_running_loop().create_future()
        self._watchers.append((machine_id, count, future))
        await future

    def _changed(self, machine_id: str) -> None:
        if not self._watchers:
            return
        n = self.pending(machine_id)
        for watcher in list(self._watchers):
            wanted_id, count, future = watcher
            if wanted_id == machine_id and (count == n or future.done()):
                self._watchers.remove(watcher)
                if not future.done():
                    future.set_result(None)

    async def wait(self, route: Route, downstream: Watched) -> Release | Refusal | None:
        """Hold the request until its machine is up: where to send it, why not, or None when
        the client went away meanwhile."""
        if self.closing is not None:
            return self.closing
        queue = self._queues.setdefault(route.machine_id, _Queue())
        if len(queue.held) >= route.max_pending:
            return Refusal(
                status=503,
                detail=(
                    f"{len(queue.held)} requests already wait for machine {route.machine_id} "
                    "to resume (max_pending_requests)"
                ),
                retry_after=RETRY_QUEUE_FULL,
            )
        held = _Held(asyncio.get_running_loop().create_future(), time.monotonic())
        queue.held.append(held)
        if queue.waker is None:
            queue.waker = asyncio.create_task(self._run(route, queue))
        self._changed(route.machine_id)
        downstream.watch(lambda: self._drop(route.machine_id, held))
        try:
            return await held.future
        except ClientGone:
            return None

    def _drop(self, machine_id: str, held: _Held) -> None:
        queue = self._queues.get(machine_id)
        if queue is not None and held in queue.held:
            queue.held.remove(held)
            if not held.future.done():
                held.future.set_exception(ClientGone())
            self._changed(machine_id)

    async def _run(self, route: Route, queue: _Queue) -> None:
        try:
            outcome = await self._wake(route, lambda: len(queue.held))
        except asyncio.CancelledError:
            outcome = WakeOutcome(refusal=self.closing)
        except Exception:
            log.exception("waking %s failed", route.machine_id)
            detail = "the gateway could not wake the machine"
            outcome = WakeOutcome(
                refusal=Refusal(status=503, detail=detail, retry_after=RETRY_RESUME_FAILED)
            )
        now = time.monotonic()
        held, queue.held = queue.held, []
        queue.waker = None
        if self._queues.get(route.machine_id) is queue:
            del self._queues[route.machine_id]
        for one in held:
            if one.future.done():
                continue
            if outcome.route is not None:
                ms = int((now - one.arrived) * 1000)
                one.future.set_result(
                    Release(route=outcome.route, resumed=outcome.resumed, held_ms=ms)
                )
            else:
                one.future.set_result(outcome.refusal or self.closing or _UNKNOWN)
        self._changed(route.machine_id)

    def close(self, refusal: Refusal) -> None:
        """Answer every held request with `refusal` now and hold nothing more (shutdown)."""
        self.closing = refusal
        for machine_id, queue in list(self._queues.items()):
            for one in queue.held:
                if not one.future.done():
                    one.future.set_result(refusal)
            if queue.waker is not None:
                queue.waker.cancel()
            self._changed(machine_id)

    async def wait_closed(self) -> None:
        wakers = [q.waker for q in self._queues.values() if q.waker is not None]
        if wakers:
            await asyncio.wait(wakers, timeout=5)


_UNKNOWN = Refusal(
    status=503, detail="the machine did not come up", retry_after=RETRY_RESUME_FAILED
)
