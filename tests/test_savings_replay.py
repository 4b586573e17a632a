"""The savings bench's replay (bench/savings_replay.py, over core/idle_rules.py) on tiny
hand-made traces: what a user would see on their bill; and its committed traces, which must be
what the generator makes from its seed."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
# bench/ holds scripts, not a package: its modules import each other by their own names.
import usage_traces  # noqa: E402
from savings_replay import Mode, Outcome, Replay, Request, oracle_seconds  # noqa: E402

DAY = 86400.0
PAUSE = 10.0
RESUME = 15.0


def serverless(timeout: int = 300, resume: float = RESUME) -> Mode:
    return Mode(
        serverless=True, sleep_after_seconds=timeout, sleep_seconds=PAUSE, wake_seconds=resume
    )


def replay(requests: list[Request], mode: Mode | None = None, horizon: float = DAY) -> Outcome:
    return Replay(requests, mode or serverless(), horizon).run()


def test_a_machine_without_requests_past_the_timeout_pauses_and_bills_nothing_asleep() -> None:
    one = [Request(0.0, 1.0)]
    day, week = replay(one), replay(one, horizon=7 * DAY)
    # The agent reports the GPU idle at its next sample (30 s), the timeout (300 s) runs from
    # then, the pause takes 10 s; after that nothing is billed, for a day or for a week.
    assert (day.sleeps, day.billed_seconds) == (1, 30 + 300 + PAUSE)
    assert week.billed_seconds == day.billed_seconds


def test_a_request_while_paused_resumes_the_machine_and_its_cold_start_is_billed() -> None:
    trace = [Request(0.0, 1.0), Request(3600.0, 40.0)]
    cold, instant = replay(trace), replay(trace, serverless(resume=0.0))
    assert (cold.cold_starts, cold.waited, cold.longest_wait_seconds) == (1, 1, RESUME)
    assert cold.sleeps == 2  # it pauses again after the request
    assert cold.billed_seconds - instant.billed_seconds == RESUME


def test_an_open_stream_longer_than_the_timeout_keeps_the_machine_up_until_it_ends() -> None:
    # Two hours of a stream that leaves the GPU idle: only the gateway's leases hold it up.
    stream = [Request(0.0, 7200.0, gpu=False)]
    outcome = replay(stream)
    assert (outcome.sleeps, outcome.billed_seconds) == (1, 7200 + 300 + PAUSE)
    # Auto-hibernation hears the agent only: the same stream does not hold it up.
    agent_only = Mode(serverless=False, sleep_after_seconds=180, sleep_seconds=30, wake_seconds=120)
    assert replay(stream, agent_only).billed_seconds < 7200


def sessions(seed: int) -> list[list[Request]]:
    """Sessions of requests every 1-60 s, 10 min to 3 h apart."""
    rng = random.Random(seed)
    out, t = [], 0.0
    for _ in range(8):
        t += rng.uniform(600, 3 * 3600)
        session = []
        for _ in range(rng.randint(1, 120)):
            session.append(Request(t, rng.uniform(0.5, 20)))
            t += rng.uniform(1, 60)
        out.append(session)
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("timeout", [300, 900])
def test_the_oracle_never_costs_more_than_serverless(seed: int, timeout: int) -> None:
    trace = sessions(seed)
    outcome = replay([r for s in trace for r in s], serverless(timeout), horizon=2 * DAY)
    assert oracle_seconds(trace, 2 * DAY) <= outcome.billed_seconds


def test_regenerating_the_traces_gives_identical_bytes() -> None:
    rendered = usage_traces.render().encode()
    assert rendered == usage_traces.render().encode()
    assert rendered == usage_traces.PATH.read_bytes()
