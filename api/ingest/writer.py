"""The background writer: the only place heartbeats reach the database.

Requests queue validated samples and return; every `flush_seconds` (or sooner, once
`max_rows` are waiting) one transaction inserts the raw samples, merges the rollups and
updates the machines' live values. Transitions it finds are signalled afterwards, off the
request path. `wait_for_commit=True` makes each request wait for its batch's commit (group
commit); otherwise accepted means queued, and a crash loses at most one flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from api.ingest.signals import Signaller, SyncSignaller
from core.metrics.liveness import (
    Heartbeat,
    Transition,
    forget_told_state,
    record_heartbeats,
    sweep_offline,
)
from core.metrics.samples import Sample
from core.metrics.standby_sync import SyncTransition, forget_told_sync, record_sync
from core.metrics.store import store_samples

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

SIGNAL_ATTEMPTS = 3
SIGNAL_CONCURRENCY = 32


class WriterOverloaded(Exception):
    """More samples are waiting than the database keeps up with: the agent retries later."""


@dataclass
class _Pending:
    samples: list[Sample] = field(default_factory=list)
    beats: dict[str, Heartbeat] = field(default_factory=dict)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class HeartbeatWriter:
    def __init__(
        self,
        engine: Engine,
        signal: Signaller,
        clock: Clock,
        *,
        flush_seconds: float = 0.05,
        max_rows: int = 2000,
        max_queued_rows: int = 100_000,
        sweep_seconds: float = 10.0,
        wait_for_commit: bool = False,
        sync_signal: SyncSignaller | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.wait_for_commit = wait_for_commit
        self.signal = signal
        # `standby_sync` transitions (None: stored, never told).
        self.sync_signal = sync_signal
        self._flush_seconds = flush_seconds
        self._max_rows = max_rows
        self._max_queued_rows = max_queued_rows
        self._sweep_seconds = sweep_seconds
        self._pending = _Pending()
        self._full = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._signal_slots = asyncio.Semaphore(SIGNAL_CONCURRENCY)
        self._signal_tasks: set[asyncio.Task[None]] = set()
        self._next_sweep = 0.0
        self._flush_lock = asyncio.Lock()  # one batch in flight: flush() waits for the loop's

    # --- request side -------------------------------------------------------------------

    def submit(self, samples: list[Sample], beat: Heartbeat) -> asyncio.Future[None] | None:
        """Queue one request's samples; with group commit, a future done at its commit."""
        pending = self._pending
        if len(pending.samples) + len(samples) > self._max_queued_rows:
            raise WriterOverloaded
        pending.samples.extend(samples)
        known = pending.beats.get(beat.machine_id)
        if known is None or beat.sample_time >= known.sample_time:
            pending.beats[beat.machine_id] = beat
        if len(pending.samples) >= self._max_rows:
            self._full.set()
        if not self.wait_for_commit:
            return None
        waiter = asyncio.get_running_loop().create_future()
        pending.waiters.append(waiter)
        return waiter

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="heartbeat-writer")

    async def stop(self) -> None:
        """Write what is queued, deliver the signals under way, then return."""
        self._stopping = True
        self._full.set()
        if self._task is not None:
            await self._task
        if self._signal_tasks:
            await asyncio.wait(self._signal_tasks, timeout=10)

    async def flush(self) -> None:
        """Write what is queued now and deliver its signals (tests, shutdown)."""
        await self._flush()
        if self._signal_tasks:
            await asyncio.gather(*self._signal_tasks, return_exceptions=True)

    async def sweep(self) -> None:
        """Mark silent machines offline now and deliver those signals."""
        now = self.clock()
        for transition in await asyncio.to_thread(sweep_offline, self.engine, now):
            self._deliver_later(transition)

    # --- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._flush_seconds)
            self._full.clear()
            try:
                await self._flush()
                if time.monotonic() >= self._next_sweep:
                    self._next_sweep = time.monotonic() + self._sweep_seconds
                    await self.sweep()
            except Exception:  # the writer must outlive a bad batch or a database hiccup
                log.exception("heartbeat writer iteration failed")
        await self._flush()

    async def _flush(self) -> None:
        async with self._flush_lock:
            await self._flush_batch()

    async def _flush_batch(self) -> None:
        batch, self._pending = self._pending, _Pending()
        if not batch.samples:
            return
        try:
            transitions = await asyncio.to_thread(self._write, batch)
        except BaseException as exc:
            log.error("lost %d heartbeat samples: %s", len(batch.samples), exc)
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            raise
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)
        for transition in transitions:
            self._deliver_later(transition)

    def _write(self, batch: _Pending) -> list[Transition | SyncTransition]:
        beats = list(batch.beats.values())
        with self.engine.begin() as conn:
            store_samples(conn, batch.samples)
            transitions: list[Transition | SyncTransition] = []
            transitions += record_heartbeats(conn, beats)
            transitions += record_sync(conn, beats)
            return transitions

    # --- signals ------------------------------------------------------------------------

    def _deliver_later(self, transition: Transition | SyncTransition) -> None:
        task = asyncio.create_task(self._deliver(transition))
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_tasks.discard)

    async def _tell(self, transition: Transition | SyncTransition) -> None:
        if isinstance(transition, SyncTransition):
            if self.sync_signal is not None:
                await self.sync_signal(transition)
        else:
            await self.signal(transition)

    async def _deliver(self, transition: Transition | SyncTransition) -> None:
        async with self._signal_slots:
            for attempt in range(SIGNAL_ATTEMPTS):
                try:
                    await self._tell(transition)
                    return
                except Exception as exc:
                    if attempt == SIGNAL_ATTEMPTS - 1:
                        log.warning(
                            "could not tell machine %s %s: %s",
                            transition.machine_id,
                            _news(transition),
                            exc,
                        )
                    else:
                        await asyncio.sleep(0.5 * 2**attempt)
        if isinstance(transition, SyncTransition):
            await asyncio.to_thread(forget_told_sync, self.engine, transition)
        else:
            await asyncio.to_thread(forget_told_state, self.engine, transition)


def _news(transition: Transition | SyncTransition) -> str:
    if isinstance(transition, SyncTransition):
        return f"its standby sync is {transition.report.health.value}"
    return f"its agent is {'online' if transition.report.online else 'offline'}"
