"""The idleness rules as pure functions of the signals and a clock: the machine workflow applies
them (workflows/machine/idleness.py) and bench/savings.py replays usage traces through the same
ones. No I/O and no wall clock: every time is passed in.

Multi-signal and failing safe: an agent offline or a GPU unread is busy, so is SSH input in the
last report interval, so are requests through the serverless gateway until their last byte (and
a gateway that stops reporting stops holding the machine up once its lease runs out).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.contracts.agent import AgentReport
from core.contracts.serverless import ServerlessStatus, TrafficReport


def agent_is_busy(report: AgentReport, interval_seconds: int) -> bool:
    """Fails safe: an agent offline or a GPU unread is busy; so is recent SSH input."""
    if not report.online:
        return True
    if report.busy is not None:
        return report.busy
    if report.gpu_busy is not False:
        return True
    interval = timedelta(seconds=interval_seconds)
    return report.last_input_at is not None and report.last_input_at >= report.at - interval


def apply_traffic(status: ServerlessStatus, report: TrafficReport, now: datetime) -> None:
    """Fold one gateway's report in: the newest request seen, and that gateway's lease while it
    still has requests open. Leases already run out are dropped."""
    if report.last_request_at is not None and (
        status.last_request_at is None or report.last_request_at > status.last_request_at
    ):
        status.last_request_at = report.last_request_at
    if report.open_requests > 0:
        status.open_until[report.gateway_id] = report.at + timedelta(seconds=report.lease_seconds)
    else:
        status.open_until.pop(report.gateway_id, None)
    status.open_until = {g: until for g, until in status.open_until.items() if until > now}
    status.requests += report.requests


def traffic_quiet_from(status: ServerlessStatus) -> datetime | None:
    """From when requests no longer keep the machine busy (None: none ever seen). In the future
    while a request is open."""
    times = [t for t in (status.last_request_at, *status.open_until.values()) if t is not None]
    return max(times) if times else None


def idle_start(
    idle_since: datetime | None, grace_until: datetime | None, quiet_from: datetime | None
) -> datetime | None:
    """When idleness starts to count: the agent idle since then, past the setup grace period
    and past the last request (None: the agent says busy)."""
    if idle_since is None:
        return None
    return max(t for t in (idle_since, grace_until, quiet_from) if t is not None)


def sleep_due_at(start: datetime | None, seconds: int) -> datetime | None:
    """When a machine idle from `start` is put to sleep (paused or hibernated)."""
    return None if start is None else start + timedelta(seconds=seconds)
