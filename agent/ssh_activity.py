"""Interactive SSH activity: how many terminal sessions are open, and the last keystroke.

On a real machine an interactive session is a pseudo-terminal whose process was started by
sshd, and the terminal's access time moves when the user types (what `w` shows as IDLE); an
open connection nobody types in does not move it. Sim machines have no sshd: their host writes
the same two facts to the JSON file named by DUMONT_SIM_SSH_FILE.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

SIM_SSH_FILE_ENV = "DUMONT_SIM_SSH_FILE"
# The process that owns a session's terminal (OpenSSH ≥ 9.8 splits it into sshd-session).
_SSHD_NAMES = frozenset({"sshd", "sshd-session"})
_PTS_MAJORS = range(136, 144)


@dataclass(frozen=True)
class SshActivity:
    active_users: int | None = None  # None: could not tell
    last_activity: datetime | None = None  # None: no keystroke seen yet


class SshActivitySource(Protocol):
    def sample(self) -> SshActivity: ...


def _latest(*times: datetime | None) -> datetime | None:
    known = [moment for moment in times if moment is not None]
    return max(known) if known else None


def _stat_fields(proc: str, pid: str) -> tuple[str, int, int]:
    """(comm, ppid, tty_nr) from /proc/PID/stat; comm may hold spaces and parentheses."""
    with open(os.path.join(proc, pid, "stat"), encoding="utf-8", errors="replace") as handle:
        raw = handle.read()
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[1]), int(fields[4])


def pts_index(tty_nr: int) -> int | None:
    """The N of /dev/pts/N for a controlling-terminal number, None when it is no pty."""
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if major not in _PTS_MAJORS:
        return None
    return (major - _PTS_MAJORS.start) * 256 + minor


class PtsSshSource:
    """Sessions: pseudo-terminals held by children of sshd. Keystroke: their newest atime."""

    def __init__(self, proc: str = "/proc", dev_pts: str = "/dev/pts") -> None:
        self._proc = proc
        self._dev_pts = dev_pts
        self._last: datetime | None = None  # kept after the session closes

    def sample(self) -> SshActivity:
        try:
            terminals = self._session_terminals()
        except OSError:
            return SshActivity(active_users=None, last_activity=self._last)
        for index in terminals:
            try:
                accessed = os.stat(os.path.join(self._dev_pts, str(index))).st_atime
            except OSError:
                continue  # closed between the scan and now
            self._last = _latest(self._last, datetime.fromtimestamp(accessed, timezone.utc))
        return SshActivity(active_users=len(terminals), last_activity=self._last)

    def _session_terminals(self) -> set[int]:
        processes: dict[int, tuple[str, int, int]] = {}
        for entry in os.listdir(self._proc):
            if entry.isdigit():
                try:
                    processes[int(entry)] = _stat_fields(self._proc, entry)
                except (OSError, ValueError, IndexError):
                    continue  # exited while scanning
        sshd = {pid for pid, (comm, _, _) in processes.items() if comm in _SSHD_NAMES}
        terminals = set()
        for comm, parent, tty_nr in processes.values():
            if parent in sshd and comm not in _SSHD_NAMES:
                index = pts_index(tty_nr)
                if index is not None:
                    terminals.add(index)
        return terminals


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class SimFileSshSource:
    """{"sessions": N, "last_input_at": ISO-8601 | null}, written by the sim's SSH server."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._last: datetime | None = None

    def sample(self) -> SshActivity:
        try:
            with open(self._path, encoding="utf-8") as handle:
                data = json.load(handle)
            sessions = int(data["sessions"])
            self._last = _latest(self._last, parse_time(data.get("last_input_at")))
        except (OSError, ValueError, KeyError, TypeError):
            return SshActivity(active_users=None, last_activity=self._last)
        return SshActivity(active_users=sessions, last_activity=self._last)


def choose_source(environ: dict[str, str] | None = None) -> SshActivitySource:
    environ = dict(os.environ) if environ is None else environ
    sim_file = environ.get(SIM_SSH_FILE_ENV)
    return SimFileSshSource(sim_file) if sim_file else PtsSshSource()
