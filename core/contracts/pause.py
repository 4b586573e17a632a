"""Pause and resume: what the machine workflow carries while a machine is paused or moving to
a new host. A pause snapshots the workspace (the safety copy) and stops the instance, its disk
kept on the host; a resume starts it there, or wakes the snapshot on a new offer when the host
cannot take it back. The updates themselves take `ActionInput` and answer `ActionResult`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.contracts.machine import InstanceInfo


@dataclass(kw_only=True)
class PauseStatus:
    # When the machine was paused (None unless paused): a paused machine is hibernated
    # `hibernate_paused_after_minutes` later.
    paused_at: datetime | None = None
    # While a resume moves to a new host: the stopped instance it leaves, destroyed once the
    # new one runs (its disk bills).
    left_behind: InstanceInfo | None = None
