"""Savings on usage traces: the seed's three scenarios (bench/data/usage_traces.json, see
bench/usage_traces.py) replayed through the idleness rules the machine workflow uses
(bench/savings_replay.py over core/idle_rules.py) on a simulated clock: the cost always-on,
in serverless mode (5 min and the default idle timeout), with auto-hibernation (its defaults;
it hears the agent only) and with an oracle that sleeps the instant a session ends and is up
the instant the next starts. Cold starts are billed. Prints savings against the seed's claims
and Dumont's share of the oracle's savings. Not a test: it asserts nothing.

    .venv/bin/python bench/savings.py [--resume-seconds 15] [--wake-seconds 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# Run as a script: bench/ is on sys.path, and the repository for the modules these import.
import usage_traces  # noqa: E402
from savings_replay import Cadence, Mode, Outcome, Replay, Request, oracle_seconds, spans  # noqa: E402

from core.contracts.hibernation import HibernationConfig  # noqa: E402
from core.contracts.machine import LifecyclePolicy  # noqa: E402
from core.contracts.serverless import (  # noqa: E402
    IDLE_TIMEOUT_MINUTES_MAX,
    IDLE_TIMEOUT_MINUTES_MIN,
    ServerlessConfig,
)
from core.settings import Settings  # noqa: E402

DEFAULT_TIMEOUT = ServerlessConfig().idle_timeout_seconds
DEFAULT_LABEL = f"serverless {DEFAULT_TIMEOUT // 60} min"
HIBERNATE_AFTER = HibernationConfig().pause_after_minutes * 60


@dataclass(frozen=True)
class Column:
    label: str
    billed_hours: float
    cost: float
    savings_percent: float
    share_percent: float | None  # of the oracle's savings
    outcome: Outcome | None


def cadence() -> Cadence:
    policy = LifecyclePolicy()
    return Cadence(
        agent_interval_seconds=policy.agent_interval_seconds,
        idle_grace_seconds=policy.idle_grace_seconds,
        gateway_report_seconds=int(Settings.model_fields["gateway_report_seconds"].default),
    )


def sessions_of(trace: list[usage_traces.Session]) -> list[list[Request]]:
    out = []
    for s in trace:
        t = float(s.start)
        times = [t]
        for gap in s.gaps:
            t += gap
            times.append(t)
        out.append([Request(a, d / 10) for a, d in zip(times, s.service_ds, strict=True)])
    return out


def serverless(args: argparse.Namespace, timeout_seconds: int) -> Mode:
    return Mode(
        serverless=True,
        sleep_after_seconds=timeout_seconds,
        sleep_seconds=args.pause_seconds,
        wake_seconds=args.resume_seconds,
    )


class Scenario:
    """One trace's replays, priced."""

    def __init__(self, args: argparse.Namespace, name: str, trace: list[usage_traces.Session]):
        self.args, self.params = args, usage_traces.scenario(name)
        self.sessions = sessions_of(trace)
        self.requests = [r for s in self.sessions for r in s]
        self.horizon = usage_traces.DAYS * 86400.0
        self.oracle_hours = oracle_seconds(self.sessions, self.horizon) / 3600
        self.always_hours = self.horizon / 3600

    def replay(self, mode: Mode, cad: Cadence | None = None) -> Outcome:
        return Replay(self.requests, mode, self.horizon, cad or cadence()).run()

    def column(self, label: str, hours: float, outcome: Outcome | None) -> Column:
        saved = self.always_hours - hours
        oracle_saved = self.always_hours - self.oracle_hours
        return Column(
            label=label,
            billed_hours=hours,
            cost=hours * self.args.price,
            savings_percent=100 * saved / self.always_hours,
            share_percent=100 * saved / oracle_saved if outcome is not None else None,
            outcome=outcome,
        )

    def share(self, timeout_seconds: int) -> float:
        hours = self.replay(serverless(self.args, timeout_seconds)).billed_seconds / 3600
        return 100 * (self.always_hours - hours) / (self.always_hours - self.oracle_hours)

    def largest_timeout_meeting(self, target: float) -> int | None:
        """Whole minutes: a binary search over the API's 5-60 (where the share falls as the
        timeout grows), else the largest of 4..1 that meets it (below that it is not monotone:
        sessions' own gaps start to pause the machine)."""
        low, high = IDLE_TIMEOUT_MINUTES_MIN, IDLE_TIMEOUT_MINUTES_MAX
        if self.share(low * 60) < target:
            return next((m for m in range(low - 1, 0, -1) if self.share(m * 60) >= target), None)
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if self.share(mid * 60) >= target else (low, mid - 1)
        return low

    def modes(self) -> list[tuple[str, Mode]]:
        a = self.args
        hibernation = Mode(
            serverless=False,
            sleep_after_seconds=HIBERNATE_AFTER,
            sleep_seconds=a.hibernate_seconds,
            wake_seconds=a.wake_seconds,
        )
        return [
            (f"serverless {IDLE_TIMEOUT_MINUTES_MIN} min", serverless(a, 5 * 60)),
            (DEFAULT_LABEL, serverless(a, DEFAULT_TIMEOUT)),
            (f"hibernation {HIBERNATE_AFTER // 60} min", hibernation),
        ]

    def columns(self) -> list[Column]:
        cols = [self.column("always-on", self.always_hours, None)]
        for label, mode in self.modes():
            outcome = self.replay(mode)
            cols.append(self.column(label, outcome.billed_seconds / 3600, outcome))
        cols.append(self.column("oracle", self.oracle_hours, None))
        return cols


def summary(sc: Scenario) -> str:
    p = sc.params
    days = len({int(r.arrival // 86400) for r in sc.requests})
    gpu_hours = sum(e - s for s, e in spans([[r] for r in sc.requests])) / 3600
    opens, closes = p.window
    when = "weekdays" if p.weekdays_only else "every day"
    return (
        f"{p.title}: sessions arrive {when} {opens:02d}-{closes:02d} UTC, {p.sessions_per_day:g}"
        f"/day, log-normal mean {p.mean_session_minutes:.0f} min (σ {p.session_sigma}); "
        f"requests every ~30 s, GPU {p.service_median_seconds:g} s median (σ {p.service_sigma})\n"
        f"  trace: {len(sc.sessions)} sessions on {days} days, {len(sc.requests)} requests, "
        f"{sc.oracle_hours:.1f} h of sessions ({sc.oracle_hours / max(days, 1):.2f} h per day "
        f"worked), GPU busy {gpu_hours:.1f} h"
    )


def table(sc: Scenario, cols: list[Column], target: float) -> list[str]:
    width = 20
    lines = [summary(sc), f"{'':<30}" + "".join(f"{c.label:>{width}}" for c in cols)]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"{label:<30}" + "".join(f"{c:>{width}}" for c in cells))

    row("billed GPU hours", [f"{c.billed_hours:.1f} h" for c in cols])
    row("cost", [f"${c.cost:.2f}" for c in cols])
    row("savings vs always-on", ["—"] + [f"{c.savings_percent:.1f} %" for c in cols[1:]])
    claim = f"{sc.params.claim_percent} %"
    row("the seed's claim", ["—"] + [claim] * (len(cols) - 1))
    row(
        f"share of oracle's (≥ {target:g} %)",
        [f"{c.share_percent:.1f} %" if c.share_percent is not None else "—" for c in cols],
    )
    outcomes = [c.outcome for c in cols]
    row("pauses / hibernates", [str(o.sleeps) if o else "0" for o in outcomes])
    row("cold starts (billed)", [str(o.cold_starts) if o else "0" for o in outcomes])
    row("requests that waited", [str(o.waited) if o else "0" for o in outcomes])
    row("requests cut by a sleep", [str(o.cut) if o else "0" for o in outcomes])
    row("longest wait", [f"{o.longest_wait_seconds:.0f} s" if o else "—" for o in outcomes])
    return lines


def verdict(sc: Scenario, cols: list[Column], best: int | None) -> list[str]:
    default = next(c for c in cols if c.label == DEFAULT_LABEL)
    assert default.outcome is not None and default.share_percent is not None
    o, a = default.outcome, sc.args
    met = default.share_percent >= a.target
    lines = [
        f"  target ≥ {a.target:g} % of the oracle's savings at the default {DEFAULT_TIMEOUT // 60} "
        f"min: {'met' if met else 'MISSED'} ({default.share_percent:.1f} %)"
    ]
    extra = default.billed_hours - sc.oracle_hours
    timeout_h = o.sleeps * DEFAULT_TIMEOUT / 3600
    pause_h = o.sleeps * a.pause_seconds / 3600
    # A cold start is billed, but inside the session the oracle bills too: its cost is the wait.
    lines.append(
        f"  billed over the oracle: {extra:.1f} h = the timeout after each of {o.sleeps} idle "
        f"stretches {timeout_h:.1f} h + pauses {pause_h:.1f} h + report latency, grace and "
        f"gaps too short to sleep {extra - timeout_h - pause_h:.1f} h"
    )
    if best is None:
        meets = "no timeout of 1 min or more meets it"
    else:
        floor = "" if best >= IDLE_TIMEOUT_MINUTES_MIN else " (below the API's 5 min floor)"
        meets = f"the largest timeout that meets it: {best} min{floor}"
    why = "" if met else "every idle stretch costs the idle timeout itself; "
    lines.append(f"  {why}{meets}")
    return lines


def probe(args: argparse.Namespace) -> list[str]:
    """One short request (its GPU work between two agent samples) to a paused machine, then
    nothing for a day: the hours billed (the agent's only report comes while the resume's hooks
    run; before patch idle-after-boot this machine stayed up for the rest of the day)."""
    trace = [Request(0.0, 1.0), Request(3600.0, 1.0)]
    replay = Replay(trace, serverless(args, DEFAULT_TIMEOUT), 86400.0, cadence())
    billed = replay.run().billed_seconds / 3600
    return [
        "Probe: a paused machine gets one 1 s request, then none for the rest of the day: "
        f"{billed:.1f} h billed"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume-seconds", type=float, default=15.0, help="same-host cold start")
    parser.add_argument("--wake-seconds", type=float, default=120.0, help="wake from hibernation")
    parser.add_argument("--pause-seconds", type=float, default=10.0, help="a pause, billed")
    parser.add_argument("--hibernate-seconds", type=float, default=30.0, help="billed")
    parser.add_argument("--price", type=float, default=usage_traces.PRICE_PER_HOUR)
    parser.add_argument("--target", type=float, default=95.0, help="% of the oracle's savings")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    traces = usage_traces.load()
    results = {}
    if not args.json:
        print(
            f"Savings on {usage_traces.DAYS}-day usage traces (seed {usage_traces.SEED}; RTX 4090 "
            f"at ${args.price:.2f}/h; resume {args.resume_seconds:g} s, pause "
            f"{args.pause_seconds:g} s, hibernation wake {args.wake_seconds:g} s, hibernate "
            f"{args.hibernate_seconds:g} s; the oracle: asleep outside sessions, no cold start)"
        )
    for name, trace in traces.items():
        sc = Scenario(args, name, trace)
        cols = sc.columns()
        best = sc.largest_timeout_meeting(args.target)
        if args.json:
            default = next(c for c in cols if c.label == DEFAULT_LABEL)
            results[name] = {
                "params": asdict(sc.params),
                "sessions": len(sc.sessions),
                "requests": len(sc.requests),
                "oracle_hours": sc.oracle_hours,
                "columns": [asdict(c) for c in cols],
                "target_met": (default.share_percent or 0) >= args.target,
                "largest_timeout_minutes_meeting_target": best,
            }
            continue
        print()
        print("\n".join(table(sc, cols, args.target) + verdict(sc, cols, best)))
    if args.json:
        print(json.dumps({"args": vars(args), "scenarios": results}, indent=2))
    else:
        print("\n" + "\n".join(probe(args)))


if __name__ == "__main__":
    main()
