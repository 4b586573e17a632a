"""An event-driven replay of one machine through the idleness rules the machine workflow uses
(core/idle_rules.py, the real functions), on a simulated clock.

What it models, as the system does it:
- the agent samples every `agent_interval_seconds` while the machine is up (GPU busy while a
  request runs) and the workflow hears only its transitions; a new agent (every boot) starts
  "not told", so its first report is always one. That report is sent while the boot's
  after-boot hooks still run, before `running`: the workflow starts no idle clock from it (the
  machine is not up yet), `running` then clears `idle_since`, and no clock starts until the
  GPU is next seen busy and then idle (workflows/machine/idleness.py; see `Cadence`);
- after every boot, idleness counts only after `idle_grace_seconds`;
- in serverless mode the gateway reports at most once per `gateway_report_seconds`, at once when
  it has been quiet that long (leading edge), and again every interval while requests are open
  (their lease: three intervals); hibernation (serverless off) hears the agent only;
- at `idle_start + timeout` the machine pauses (or hibernates): billed while that runs, nothing
  while asleep; a request while asleep is held and wakes it, and the wake is billed (a cold
  start); requests arriving while it sleeps, pauses or wakes wait, and run once it is up.

Simplifications: a request runs as soon as the machine is up (no queueing on the GPU); one in
flight when a pause or hibernate starts is counted (`cut`) and left to finish; the stopped
disk's and the snapshots' storage are not billed. Hibernation has no gateway to hold a request:
the replay wakes it on one as if its client (or a person) did, and the request waits.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from core import idle_rules
from core.contracts.agent import AgentReport
from core.contracts.hibernation import HibernationStatus
from core.contracts.serverless import ServerlessConfig, ServerlessStatus, TrafficReport

EPOCH = datetime(2026, 11, 2, tzinfo=UTC)
GATEWAY_ID = "bench"
LEASE_INTERVALS = 3  # what the gateway's reports hold open requests up for


@dataclass(frozen=True)
class Request:
    arrival: float  # seconds from the trace's start
    service: float  # seconds of GPU work (or of an open stream)
    gpu: bool = True  # False: a stream or socket that is open but keeps the GPU idle


@dataclass(frozen=True, kw_only=True)
class Mode:
    """How the machine sleeps: serverless (gateway traffic counts, it pauses) or hibernation
    (the agent only)."""

    serverless: bool
    sleep_after_seconds: int
    sleep_seconds: float  # the pause or hibernate itself (snapshot, provider stop): billed
    wake_seconds: float  # request → the machine up and its service ready: billed


@dataclass(frozen=True, kw_only=True)
class Cadence:
    agent_interval_seconds: int = 30
    idle_grace_seconds: int = 120
    gateway_report_seconds: int = 30


@dataclass
class Outcome:
    billed_seconds: float = 0.0
    sleeps: int = 0
    cold_starts: int = 0
    waited: int = 0  # requests that arrived while the machine was not up
    longest_wait_seconds: float = 0.0
    cut: int = 0  # requests still running when a pause or hibernate began
    requests: int = 0


class State(Enum):
    UP = "up"
    SLEEPING = "sleeping"  # pausing or hibernating: still billed
    ASLEEP = "asleep"
    WAKING = "waking"


def _at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


@dataclass
class _Gateway:
    """One gateway process's view of the machine's traffic and its report schedule."""

    last_request_at: datetime | None = None
    requests: int = 0
    last_report: datetime | None = None
    next_report: datetime | None = None

    def saw(self, at: datetime, interval: timedelta, *, new: bool) -> None:
        if self.last_request_at is None or at > self.last_request_at:
            self.last_request_at = at
        self.requests += new
        if self.next_report is None:  # at once after a quiet interval (leading edge)
            last = self.last_report
            self.next_report = at if last is None or at >= last + interval else last + interval

    def report(self, at: datetime, open_requests: int, interval: timedelta) -> TrafficReport:
        report = TrafficReport(
            gateway_id=GATEWAY_ID,
            at=at,
            last_request_at=self.last_request_at,
            open_requests=open_requests,
            requests=self.requests,
            lease_seconds=LEASE_INTERVALS * int(interval.total_seconds()),
        )
        self.requests, self.last_report = 0, at
        # Open requests are reported again within their lease, traffic or not.
        self.next_report = at + interval if open_requests else None
        return report


@dataclass
class Replay:
    requests: list[Request]
    mode: Mode
    horizon_seconds: float
    cadence: Cadence = field(default_factory=Cadence)

    def run(self) -> Outcome:
        c, m = self.cadence, self.mode
        interval = timedelta(seconds=c.agent_interval_seconds)
        gw_interval = timedelta(seconds=c.gateway_report_seconds)
        horizon = _at(self.horizon_seconds)
        arrivals = sorted(self.requests, key=lambda r: r.arrival)
        hib = HibernationStatus()
        config = ServerlessConfig(enabled=m.serverless, idle_timeout_seconds=m.sleep_after_seconds)
        traffic = ServerlessStatus(config=config)
        gateway = _Gateway()
        out = Outcome(requests=len(arrivals))
        state = State.UP
        told: bool | None = None  # the busy verdict the workflow was last told (None: a new agent)
        ends: list[tuple[datetime, bool]] = []  # (end, holds the GPU) of requests running
        held: list[Request] = []
        next_tick: datetime | None = _at(0)
        op_done: datetime | None = None
        asleep_since: datetime | None = None
        asleep = timedelta(0)
        wake_after_sleep = False
        i = 0

        def on_report(now: datetime) -> None:
            nonlocal told
            busy = any(gpu for _, gpu in ends)
            if told is not None and busy == told:
                return  # no transition: the workflow hears nothing
            told = busy
            report = AgentReport(
                online=True, at=now, gpu_busy=busy, busy=busy, gpu_utilization=90.0 * busy
            )
            # Idleness.on_report: only an up machine starts an idle clock.
            if idle_rules.agent_is_busy(report, c.agent_interval_seconds):
                hib.idle_since = None
            elif hib.idle_since is None and state is State.UP:
                hib.idle_since = report.at

        def sleep_due() -> datetime | None:
            if state is not State.UP or hib.idle_since is None:
                return None
            quiet = idle_rules.traffic_quiet_from(traffic) if m.serverless else None
            start = idle_rules.idle_start(hib.idle_since, hib.grace_until, quiet)
            return idle_rules.sleep_due_at(start, m.sleep_after_seconds)

        def start_wake(now: datetime) -> None:
            nonlocal state, op_done, asleep, asleep_since
            assert asleep_since is not None
            asleep += now - asleep_since
            asleep_since = None
            state, op_done = State.WAKING, now + timedelta(seconds=m.wake_seconds)
            out.cold_starts += 1

        def begin(request: Request, now: datetime) -> None:
            heapq.heappush(ends, (now + timedelta(seconds=request.service), request.gpu))
            if m.serverless:
                gateway.saw(now, gw_interval, new=False)

        while True:
            due = sleep_due()
            # Order at equal times: an operation ends, requests end, arrive, the gateway's report,
            # the deadline, the agent's sample (its report reaches the workflow a little later:
            # the deadline, `at + timeout` of an earlier report, fires first).
            candidates: list[tuple[datetime, int]] = []
            if op_done is not None:
                candidates.append((op_done, 0))
            if ends:
                candidates.append((ends[0][0], 1))
            if i < len(arrivals):
                candidates.append((_at(arrivals[i].arrival), 2))
            if gateway.next_report is not None:
                candidates.append((gateway.next_report, 3))
            if due is not None:
                candidates.append((due, 4))
            if next_tick is not None and state is State.UP:
                candidates.append((next_tick, 5))
            if not candidates:
                break
            now, kind = min(candidates)
            if now >= horizon:
                break
            if kind == 0:
                op_done = None
                if state is State.SLEEPING:
                    state, asleep_since = State.ASLEEP, now
                    if wake_after_sleep:  # a request came while it paused
                        wake_after_sleep = False
                        start_wake(now)
                else:  # up: the agent's first report, `running` (grace), held requests
                    told = None  # the install resets what the workflow was told
                    on_report(now)  # while the boot's hooks run: no idle clock starts
                    state = State.UP
                    hib.idle_since, hib.grace_until = (
                        None,
                        now + timedelta(seconds=c.idle_grace_seconds),
                    )
                    if told is False:  # `running` (patch idle-after-boot): the agent said idle
                        hib.idle_since = now
                    next_tick = now + interval
                    for request in held:
                        out.longest_wait_seconds = max(
                            out.longest_wait_seconds, (now - _at(request.arrival)).total_seconds()
                        )
                        begin(request, now)
                    held.clear()
            elif kind == 1:
                heapq.heappop(ends)
                if m.serverless:
                    gateway.saw(now, gw_interval, new=False)  # the last byte
            elif kind == 2:
                request = arrivals[i]
                i += 1
                if m.serverless:
                    gateway.saw(now, gw_interval, new=True)
                if state is State.UP:
                    begin(request, now)
                    continue
                held.append(request)
                out.waited += 1
                if state is State.ASLEEP:
                    start_wake(now)
                elif state is State.SLEEPING:
                    wake_after_sleep = True
            elif kind == 3:
                report = gateway.report(now, len(ends), gw_interval)
                idle_rules.apply_traffic(traffic, report, now)
            elif kind == 4:
                state, op_done = State.SLEEPING, now + timedelta(seconds=m.sleep_seconds)
                out.sleeps += 1
                out.cut += len(ends)
            else:
                on_report(now)
                next_tick = now + interval
        if asleep_since is not None:
            asleep += horizon - asleep_since
        out.billed_seconds = self.horizon_seconds - asleep.total_seconds()
        return out


def spans(groups: list[list[Request]]) -> list[tuple[float, float]]:
    """Merged [first arrival, last end] spans of the groups (sessions, or single requests)."""
    merged: list[tuple[float, float]] = []
    for first, end in sorted(
        (min(r.arrival for r in g), max(r.arrival + r.service for r in g)) for g in groups if g
    ):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((first, end))
    return merged


def oracle_seconds(sessions: list[list[Request]], horizon_seconds: float) -> float:
    """The oracle: billed exactly while a session runs (from its first request to its last
    one's end), asleep the instant it ends, up the instant the next starts: no cold start."""
    return sum(min(end, horizon_seconds) - s for s, end in spans(sessions) if s < horizon_seconds)
