"""The three usage scenarios of the seed as 30-day request traces, generated once from a fixed
seed and committed as data (bench/data/usage_traces.json); bench/savings.py replays them.

The model, per scenario:
- sessions arrive as a Poisson process over the scenario's working hours (UTC), on the days it
  works; a session arriving while the previous one still runs starts when it ends (one user, or
  one batch queue, works on one thing at a time), so the work per day averages
  `sessions_per_day * mean_session_minutes` = the seed's daily hours;
- session lengths are log-normal around that mean (`session_sigma` of the log);
- requests within a session arrive with exponential gaps (mean 30 s), the first at its start;
- each request holds the GPU for a log-normal service time (median and sigma below), and the
  GPU is busy while any request runs.

    .venv/bin/python bench/usage_traces.py --regenerate   # rewrites the file, byte for byte
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 14
DAYS = 30
# A Monday, so that the dev/test trace has its weekends where a calendar has them.
START = datetime(2026, 11, 2, tzinfo=UTC)
PRICE_PER_HOUR = 0.40  # the seed's RTX 4090
GAP_MEAN_SECONDS = 30.0
PATH = Path(__file__).resolve().parent / "data" / "usage_traces.json"


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    title: str
    daily_hours: float  # the seed's
    claim_percent: int  # the seed's savings claim: 1 - daily_hours / 24
    weekdays_only: bool
    window: tuple[int, int]  # hours (UTC) over which sessions arrive
    sessions_per_day: float
    session_sigma: float
    service_median_seconds: float
    service_sigma: float
    why: str  # what a session and a request stand for

    @property
    def mean_session_minutes(self) -> float:
        return self.daily_hours * 60 / self.sessions_per_day


SCENARIOS = (
    Scenario(
        name="dev",
        title="dev/test",
        daily_hours=4,
        claim_percent=83,
        weekdays_only=True,
        window=(9, 19),
        sessions_per_day=3,
        session_sigma=0.6,
        service_median_seconds=5,
        service_sigma=1.0,
        why="a developer's working block; a request is a test run or a notebook cell",
    ),
    Scenario(
        name="api",
        title="API inference",
        daily_hours=8,
        claim_percent=67,
        weekdays_only=False,
        window=(8, 22),
        sessions_per_day=4,
        session_sigma=0.5,
        service_median_seconds=2.5,
        service_sigma=0.8,
        why="a stretch of client traffic; a request is a (streamed) completion",
    ),
    Scenario(
        name="batch",
        title="nightly batch",
        daily_hours=6,
        claim_percent=75,
        weekdays_only=False,
        window=(0, 6),
        sessions_per_day=3,
        session_sigma=0.4,
        service_median_seconds=20,
        service_sigma=0.5,
        why="a queued job (queued jobs run back to back); a request is one batch of items",
    ),
)


@dataclass(frozen=True)
class Session:
    """Seconds from the trace's start; gaps in whole seconds, service times in tenths."""

    start: int
    gaps: list[int]  # before each request after the first
    service_ds: list[int]


def _lognormal(rng: random.Random, mean_or_median: float, sigma: float, *, mean: bool) -> float:
    mu = math.log(mean_or_median) - (sigma**2 / 2 if mean else 0.0)
    return rng.lognormvariate(mu, sigma)


def generate(scenario: Scenario, seed: int = SEED, days: int = DAYS) -> list[Session]:
    # A string seed is hashed the same way on every run and platform (random's version 2).
    rng = random.Random(f"{seed}:{scenario.name}")
    opens, closes = scenario.window
    rate = scenario.sessions_per_day / ((closes - opens) * 3600)  # per second
    sessions: list[Session] = []
    busy_until = 0.0
    for day in range(days):
        if scenario.weekdays_only and (START + timedelta(days=day)).weekday() >= 5:
            continue
        t = float(day * 86400 + opens * 3600)
        while True:
            t += rng.expovariate(rate)
            if t >= day * 86400 + closes * 3600:
                break
            start = round(max(t, busy_until))
            length = _lognormal(
                rng, scenario.mean_session_minutes * 60, scenario.session_sigma, mean=True
            )
            gaps: list[int] = []
            service = [_service(rng, scenario)]
            offset = 0
            while True:
                gap = max(1, round(rng.expovariate(1 / GAP_MEAN_SECONDS)))
                if offset + gap >= length:
                    break
                offset += gap
                gaps.append(gap)
                service.append(_service(rng, scenario))
            sessions.append(Session(start, gaps, service))
            busy_until = start + offset + service[-1] / 10
    return sessions


def _service(rng: random.Random, scenario: Scenario) -> int:
    seconds = _lognormal(rng, scenario.service_median_seconds, scenario.service_sigma, mean=False)
    return max(1, round(seconds * 10))


def render(seed: int = SEED, days: int = DAYS) -> str:
    """The file's text: valid JSON, one session a line (diffs stay readable)."""
    meta = {
        "seed": seed,
        "days": days,
        "start": START.isoformat(),
        "price_per_hour": PRICE_PER_HOUR,
        "gap_mean_seconds": GAP_MEAN_SECONDS,
        "format": "sessions: [start s, [gaps s], [service times in tenths of s]]",
    }
    lines = ['{"meta":' + json.dumps(meta, sort_keys=True, separators=(",", ":")) + ","]
    lines.append('"scenarios":{')
    for i, scenario in enumerate(SCENARIOS):
        params = json.dumps(asdict(scenario), sort_keys=True, separators=(",", ":"))
        lines.append(f'"{scenario.name}":{{"params":{params},"sessions":[')
        sessions = generate(scenario, seed, days)
        rows = [
            json.dumps([s.start, s.gaps, s.service_ds], separators=(",", ":")) for s in sessions
        ]
        lines.append(",\n".join(rows))
        lines.append("]}" + ("," if i < len(SCENARIOS) - 1 else ""))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def load(path: Path = PATH) -> dict[str, list[Session]]:
    data = json.loads(path.read_text())
    return {
        name: [Session(start, gaps, service) for start, gaps, service in body["sessions"]]
        for name, body in data["scenarios"].items()
    }


def scenario(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help=f"rewrite {PATH.name}")
    args = parser.parse_args()
    if args.regenerate:
        PATH.parent.mkdir(exist_ok=True)
        PATH.write_text(render())
        print(f"wrote {PATH} ({PATH.stat().st_size} bytes)")
    else:
        same = PATH.exists() and PATH.read_text() == render()
        print(f"{PATH}: {'up to date' if same else 'differs from the generator (--regenerate)'}")


if __name__ == "__main__":
    main()
