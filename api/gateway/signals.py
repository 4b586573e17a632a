"""The process is asked to stop (SIGTERM, SIGINT): the gateway hears it first. uvicorn waits
for every open connection before the application's shutdown runs, and a held request may be
held for minutes; so the gateway answers its held requests at once, then whatever handled the
signal before (uvicorn's graceful shutdown) runs as it would have."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` in the running loop when a stop signal arrives, before the handler that
    was installed; returns what undoes it. Signals reach only the main thread: elsewhere (a
    server in a test's thread) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        before = previous.get(signum)
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handler)

    def undo() -> None:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, before)

    return undo
