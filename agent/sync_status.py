"""sync-status.json: the outcome of the agent's pushes to the standby, written after each
attempt (atomically: the heartbeat reads it at any moment), and the heartbeat's `sync` block.

An error keeps the last success: the standby still holds that copy, whatever failed since.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any

from agent.sync_config import STATUS_FILE, SYNC_FILE, SyncConfig, SyncConfigError

MAX_ERROR_CHARS = 1000  # the API takes 2000; a long rsync complaint is cut, not refused
REPORTED = (
    "last_success_at",
    "last_duration_seconds",
    "last_bytes_sent",
    "consecutive_failures",
    "error",
    "target",
)


def iso(moment: datetime) -> str:
    """UTC, millisecond precision, with a Z (as the heartbeat's timestamps)."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class SyncStatus:
    last_attempt_at: str | None = None
    last_success_at: str | None = None
    last_duration_seconds: float | None = None
    last_bytes_sent: int | None = None
    consecutive_failures: int = 0
    error: str | None = None
    target: str | None = None

    def succeeded(self, at: datetime, seconds: float, bytes_sent: int | None) -> SyncStatus:
        return replace(
            self,
            last_attempt_at=iso(at),
            last_success_at=iso(at),
            last_duration_seconds=round(seconds, 3),
            last_bytes_sent=bytes_sent,
            consecutive_failures=0,
            error=None,
        )

    def failed(self, at: datetime, error: str) -> SyncStatus:
        return replace(
            self,
            last_attempt_at=iso(at),
            consecutive_failures=self.consecutive_failures + 1,
            error=cut(error),
        )

    def report(self) -> dict[str, Any]:
        data = asdict(self)
        return {name: data[name] for name in REPORTED}


def cut(text: str) -> str:
    text = text.replace("\0", "").strip() or "failed without a message"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def read_status(path: str, target: str | None) -> SyncStatus:
    """The status of pushes to `target` (None: a sync file that could not be used); a fresh
    one when there is none yet, it is unreadable, or it is about another target (the machine
    was linked to a new standby)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return SyncStatus(target=target)
    if not isinstance(data, dict) or data.get("target") != target:
        return SyncStatus(target=target)
    fields = SyncStatus.__dataclass_fields__
    known: dict[str, Any] = {name: value for name, value in data.items() if name in fields}
    try:
        status = SyncStatus(**known)
    except TypeError:
        return SyncStatus(target=target)
    failures = status.consecutive_failures
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
        return SyncStatus(target=target)
    return status


def write_status(path: str, status: SyncStatus) -> None:
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(asdict(status), handle)
        handle.write("\n")
    os.replace(partial, path)


def report_block(agent_dir: str) -> dict[str, Any] | None:
    """The heartbeat's `sync` block: None when there is no sync file (no standby linked)."""
    sync_file = os.path.join(agent_dir, SYNC_FILE)
    config: SyncConfig | None
    try:
        config = SyncConfig.load(sync_file)
    except FileNotFoundError:
        return None
    except (OSError, SyncConfigError):
        # A sync file the loop cannot use is a failing sync, not a missing one: the loop
        # counts those failures under no target.
        config = None
    target = None if config is None else str(config.target)
    status = read_status(os.path.join(agent_dir, STATUS_FILE), target)
    return status.report()
