"""Posting, buffering and backing off, against a real HTTP server; the clock is the test's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.client import MAX_BATCH_REPORTS, Uploader
from agent.config import AgentConfig
from tests.agent.recording_server import RecordingServer

TOKEN = "dma_not-a-real-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def uploader(
    server: RecordingServer, clock: Clock, *, interval: float = 1.0, max_buffered: int = 2880
) -> Uploader:
    config = AgentConfig(
        machine_id="vast_1", api_url=server.url + "/", token=TOKEN, interval_seconds=interval
    )
    # jitter() = 1.0 makes every delay exactly base·2ⁿ (capped): the schedule is checkable.
    return Uploader(config, max_buffered=max_buffered, clock=clock, jitter=lambda: 1.0)


def report(n: int, **extra: Any) -> dict[str, Any]:
    return {"instance_id": "vast_1", "n": n, **extra}


def numbers(server: RecordingServer) -> list[int]:
    return [r["n"] for r in server.reports]


def test_a_report_is_posted_as_is_with_the_machines_token(recorder: RecordingServer) -> None:
    up = uploader(recorder, Clock())
    up.add(report(1))
    up.flush()
    (request,) = recorder.received
    assert request.path == "/api/agent/status"
    assert request.authorization == f"Bearer {TOKEN}"
    assert request.body == report(1)
    assert up.pending == 0


def test_backlog_goes_out_oldest_first_once_the_api_is_back_and_the_oldest_beyond_the_bound_are_dropped(  # noqa: E501
    recorder: RecordingServer,
) -> None:
    clock = Clock()
    up = uploader(recorder, clock, max_buffered=10)
    recorder.stop()  # connection refused from now on
    for n in range(25):
        up.add(report(n))
        up.flush()  # never raises
        clock.now += 1.0
    assert (up.pending, up.dropped) == (10, 15)

    recorder.start()
    clock.now += 60  # past any backoff
    up.flush()
    assert numbers(recorder) == list(range(15, 25))
    (batch,) = recorder.received
    assert isinstance(batch.body, dict) and len(batch.body["samples"]) == 10
    assert up.pending == 0


def test_a_long_backlog_is_split_within_the_apis_limits(recorder: RecordingServer) -> None:
    clock = Clock()
    up = uploader(recorder, clock)
    recorder.status = 503
    padding = "x" * 3000  # big reports (many GPUs): the byte limit splits before the count does
    for n in range(MAX_BATCH_REPORTS + 700):
        up.add(report(n, padding=padding if n < 300 else ""))
    up.flush()
    recorder.status = 200
    clock.now += 60
    up.flush()

    assert numbers(recorder) == list(range(MAX_BATCH_REPORTS + 700))
    sizes = [len(request.reports) for request in recorder.received]
    assert all(size <= MAX_BATCH_REPORTS for size in sizes)
    assert all(len(json.dumps(request.body)) < 1024 * 1024 for request in recorder.received)
    assert len(sizes) >= 3


@pytest.mark.parametrize(
    ("jitter", "expected_gaps"),
    [(1.0, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]), (0.0, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0])],
)
def test_errors_back_off_exponentially_up_to_a_cap_with_jitter(
    recorder: RecordingServer, jitter: float, expected_gaps: list[float]
) -> None:
    clock = Clock()
    config = AgentConfig(
        machine_id="vast_1", api_url=recorder.url, token=TOKEN, interval_seconds=1.0
    )
    # Base: the interval (1 s); cap: ten intervals. jitter() scales each delay by 0.5 to 1.
    up = Uploader(config, clock=clock, jitter=lambda: jitter)
    recorder.status = 503
    up.add(report(1))
    start, attempts_at = clock.now, []
    while clock.now < start + 60:
        seen = recorder.attempts
        up.flush()
        if recorder.attempts > seen:
            attempts_at.append(clock.now - start)
        clock.now += 0.25
    gaps = [round(b - a, 2) for a, b in zip(attempts_at, attempts_at[1:], strict=False)]
    assert gaps[:6] == expected_gaps

    recorder.status = 200  # back: the report goes at the next attempt, and backoff resets
    clock.now += 10
    up.flush()
    assert numbers(recorder) == [1]
    recorder.status = 503
    up.add(report(2))
    up.flush()
    clock.now += 1.0
    seen = recorder.attempts
    up.flush()
    assert recorder.attempts == seen + 1  # one base delay later, not the cap


def test_retry_after_is_honoured(recorder: RecordingServer) -> None:
    clock = Clock()
    up = uploader(recorder, clock, interval=1.0)
    recorder.status, recorder.retry_after = 429, "7"
    up.add(report(1))
    up.flush()
    recorder.status, recorder.retry_after = 200, None
    clock.now += 6.5
    up.flush()
    assert recorder.reports == []
    clock.now += 0.5
    up.flush()
    assert numbers(recorder) == [1]


def test_a_batch_the_api_refuses_is_dropped_but_timeouts_and_rate_limits_are_retried(
    recorder: RecordingServer,
) -> None:
    clock = Clock()
    up = uploader(recorder, clock)
    recorder.status = 422
    up.add(report(1))
    up.add(report(2))
    up.flush()
    assert (recorder.attempts, up.pending, up.dropped) == (1, 0, 2)

    for status in (408, 429):
        recorder.status = status
        up.add(report(status))
        up.flush()
        assert up.pending == 1
        recorder.status = 200
        clock.now += 60
        up.flush()
        assert up.pending == 0
    assert numbers(recorder) == [408, 429]
