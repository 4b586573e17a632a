"""The deadlines the machine's run loop sleeps towards, after samples-python `updatable_timer`:
each capability watches its own (absolute times kept in the carried state), and a deadline that
moves wakes the loop so that it re-arms its one timer.

A deadline already passed is not waited for: it was acted on when it passed (the loop checks its
work after every timer and message); waiting on it again would wake the workflow every second
for as long as a machine stays idle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

Source = Callable[[], list[datetime | None]]


@dataclass
class _Watched:
    source: Source
    # Whether a move of these wakes the loop (else they are only seen when it next re-arms).
    wakes: bool
    last: tuple[datetime | None, ...] = ()


class Deadlines:
    def __init__(self) -> None:
        self._watched: dict[str, _Watched] = {}
        self._moves = 0

    def watch(self, name: str, source: Source, *, wakes: bool = True) -> None:
        self._watched[name] = _Watched(source, wakes)

    def set_wakes(self, name: str, wakes: bool) -> None:
        self._watched[name].wakes = wakes

    def check(self) -> None:
        """Read every source again (after each message and transition): a move is counted."""
        for watched in self._watched.values():
            now = tuple(watched.source())
            if now != watched.last:
                watched.last = now
                if watched.wakes:
                    self._moves += 1

    @property
    def mark(self) -> int:
        return self._moves

    def moved_since(self, mark: int) -> bool:
        return self._moves != mark

    def next_wait(self, now: datetime) -> timedelta | None:
        """How long until the next deadline ahead, at least a second; None when none is."""
        ahead = [t for watched in self._watched.values() for t in watched.source() if t and t > now]
        if not ahead:
            return None
        return max(min(ahead) - now, timedelta(seconds=1))
