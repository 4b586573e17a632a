"""Traffic per machine, told to its workflow at most once per `interval` (never once per
request: a signal per request would not scale). The first request after a quiet interval is
reported at once (the leading edge), without delaying it; while requests arrive or stay open
the machine hears again every interval, so that open requests (streams, WebSockets) are
re-reported within their lease (`lease_seconds`, three intervals): a gateway that dies stops
holding the machine up once its lease runs out. Keep-alive paths are never counted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.contracts.serverless import TrafficReport

log = logging.getLogger(__name__)

SendReport = Callable[[str, TrafficReport], Awaitable[None]]
WriteLastRequest = Callable[[str, datetime], Awaitable[None]]


@dataclass(slots=True)
class _Machine:
    open: int = 0
    requests: int = 0  # since the last report
    last_request_at: datetime | None = None
    reported_at: float | None = None  # monotonic
    dirty: bool = False  # something happened since the last report
    sending: bool = False
    written: datetime | None = None  # the last_request_at last written to the database


class Traffic:
    def __init__(
        self,
        *,
        gateway_id: str,
        interval: float,
        send: SendReport,
        write_last_request: WriteLastRequest,
    ) -> None:
        self.gateway_id = gateway_id
        self.interval = interval
        self._send = send
        self._write = write_last_request
        self._machines: dict[str, _Machine] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- per request (cheap: no I/O, no await) -------------------------------------------

    def opened(self, machine_id: str) -> None:
        m = self._machines.get(machine_id)
        if m is None:
            m = self._machines[machine_id] = _Machine()
        m.open += 1
        m.requests += 1
        m.last_request_at = datetime.now(UTC)
        m.dirty = True
        if m.reported_at is None or time.monotonic() - m.reported_at >= self.interval:
            self._report(machine_id, m)

    def closed(self, machine_id: str) -> None:
        m = self._machines.get(machine_id)
        if m is None:
            return
        m.open -= 1
        m.last_request_at = datetime.now(UTC)  # the request's last byte counts too
        m.dirty = True

    def open_requests(self, machine_id: str) -> int:
        m = self._machines.get(machine_id)
        return m.open if m else 0

    # --- reporting -------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: report every machine whose interval is up and that has news or
        open requests."""
        tick = min(max(self.interval / 4, 0.05), 1.0)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for machine_id, m in list(self._machines.items()):
                due = m.reported_at is None or now - m.reported_at >= self.interval
                if due and (m.dirty or m.open > 0):
                    self._report(machine_id, m)
                elif not m.dirty and m.open <= 0 and not m.sending and due:
                    del self._machines[machine_id]  # quiet: forgotten until its next request

    async def flush(self) -> None:
        """A last report of every machine with news (at shutdown: its open requests end)."""
        for machine_id, m in list(self._machines.items()):
            if m.dirty or m.open > 0:
                self._report(machine_id, m)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    def _report(self, machine_id: str, m: _Machine) -> None:
        if m.sending:
            return  # the next tick sends what this one would have
        report = TrafficReport(
            gateway_id=self.gateway_id,
            at=datetime.now(UTC),
            last_request_at=m.last_request_at,
            open_requests=max(m.open, 0),
            requests=m.requests,
            lease_seconds=max(int(3 * self.interval), 1),
        )
        m.requests = 0
        m.dirty = False
        m.reported_at = time.monotonic()
        m.sending = True
        task = asyncio.create_task(self._deliver(machine_id, m, report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, machine_id: str, m: _Machine, report: TrafficReport) -> None:
        try:
            await self._send(machine_id, report)
            last = report.last_request_at
            if last is not None and last != m.written:
                await self._write(machine_id, last)
                m.written = last
        except Exception as exc:  # noqa: BLE001 - told again at the next interval
            log.warning("traffic report for %s not delivered: %s", machine_id, exc)
            m.dirty = True
            m.requests += report.requests
        finally:
            m.sending = False
