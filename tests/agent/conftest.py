from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agent.recording_server import RecordingServer


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
