"""JSON lines between the engine and the control plane: stdout out, stdin in.

Every message is one JSON object with a "t" (type) field. stdout carries nothing else, so the
engine's own diagnostics go to stderr.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import IO, Any, Dict

Message = Dict[str, Any]


class Wire:
    def __init__(self, incoming: IO[bytes] | None = None, outgoing: IO[bytes] | None = None):
        self._in = incoming if incoming is not None else sys.stdin.buffer
        self._out = outgoing if outgoing is not None else sys.stdout.buffer
        self._lock = threading.Lock()

    def send(self, kind: str, **fields: Any) -> None:
        fields["t"] = kind
        line = json.dumps(fields, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()

    def receive(self) -> Message | None:
        """The next message; None when the control plane closed stdin."""
        line = self._in.readline()
        if not line:
            return None
        message = json.loads(line)
        if not isinstance(message, dict) or "t" not in message:
            raise ValueError(f"not a message: {line[:200]!r}")
        return message
