"""What sshd's terminals would tell the agent about interactive use of a machine."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime

from sim.sandbox.layout import MachineLayout


class InteractiveActivity:
    """What sshd's terminals tell the agent on a real machine, written to the machine's
    ssh.json: how many pty sessions are open, and when a client last sent input to one."""

    def __init__(self, layout: MachineLayout) -> None:
        self._path = layout.ssh_file
        self.sessions = 0
        self.last_input_at = self._recorded_last_input()

    def _recorded_last_input(self) -> str | None:
        # The last keystroke outlives a restart of the machine's SSH server.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            value = json.loads(self._path.read_text()).get("last_input_at")
            return value if isinstance(value, str) else None
        return None

    def opened(self) -> None:
        self.sessions += 1
        self.write()

    def closed(self) -> None:
        self.sessions -= 1
        self.write()

    def input_received(self) -> None:
        self.last_input_at = datetime.now(UTC).isoformat()
        self.write()

    def write(self) -> None:
        payload = {"sessions": self.sessions, "last_input_at": self.last_input_at}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, self._path)
