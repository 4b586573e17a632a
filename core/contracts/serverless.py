"""Serverless mode: what the machine workflow carries and the messages the gateway and the API
send it. The workflow knows only what idleness needs (is the mode on, after how many idle
minutes it pauses, when requests were last seen); the endpoint's key, port and queue limits are
the gateway's, in the database.

The gateway reports traffic at most once per interval per machine, never once per request: a
report says when the last request was seen and how many requests (streams, WebSockets) are
still open. Open requests keep the machine busy until `at + lease_seconds`; the gateway repeats
its report within the lease while they stay open, so a gateway that dies stops holding the
machine up once its lease runs out (idleness fails safe both ways).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.contracts.machine import InstanceInfo
from core.contracts.states import MachineState

# The seed's bounds for `idle_timeout_minutes` (the API's; the workflow takes seconds).
IDLE_TIMEOUT_MINUTES_MIN = 5
IDLE_TIMEOUT_MINUTES_MAX = 60
IDLE_TIMEOUT_MINUTES_DEFAULT = 15


@dataclass(kw_only=True)
class ServerlessConfig:
    enabled: bool = False
    # Time without a request, GPU load or SSH input before the machine is paused. The API
    # keeps the seed's 5-60 minutes; tests may go lower (DUMONT_SERVERLESS_MIN_IDLE_MINUTES).
    idle_timeout_seconds: int = IDLE_TIMEOUT_MINUTES_DEFAULT * 60


@dataclass(kw_only=True)
class ServerlessStatus:
    """Carried in `MachineSnapshot.serverless`."""

    config: ServerlessConfig = field(default_factory=ServerlessConfig)
    # The newest request any gateway has seen (its first byte or its last, whichever is later).
    last_request_at: datetime | None = None
    # Gateway process -> until when its open requests keep the machine busy.
    open_until: dict[str, datetime] = field(default_factory=dict)
    requests: int = 0  # counted by the gateways' reports, since the mode was first enabled


@dataclass(kw_only=True)
class ServerlessInput:
    """Update `serverless`: turn the mode on or off, or change its idle timeout."""

    enabled: bool
    idle_timeout_seconds: int = IDLE_TIMEOUT_MINUTES_DEFAULT * 60
    reason: str | None = None


@dataclass(kw_only=True)
class ServerlessResult:
    machine_id: str
    state: MachineState
    config: ServerlessConfig


@dataclass(kw_only=True)
class TrafficReport:
    """Signal `serverless_traffic`, from one gateway process."""

    gateway_id: str
    at: datetime
    last_request_at: datetime | None = None
    open_requests: int = 0
    requests: int = 0  # since this gateway's previous report
    lease_seconds: int = 90


@dataclass(kw_only=True)
class WakeForRequestInput:
    """Update `wake_for_request`: a request is held for this machine. A paused (or hibernated)
    machine is resumed; one that is pausing is resumed once the pause is done; one resuming or
    up answers as soon as it is up."""

    reason: str = "a request arrived"


@dataclass(kw_only=True)
class WakeForRequestResult:
    machine_id: str
    state: MachineState
    instance: InstanceInfo | None = None
    resumed: bool = False  # this request's wait included a resume (a cold start)
    # Why the machine is not up (a failed resume, a stopped machine), in words for the user.
    problem: str | None = None


@dataclass(kw_only=True)
class ColdStartGaveUp:
    """Signal `serverless_gave_up`: a gateway answered held requests 503 (the resume or the
    service's readiness took longer than `resume_timeout_seconds`, or the gateway is shutting
    down). Recorded as an event so that the machine's history says why its clients failed."""

    gateway_id: str
    reason: str
    held: int
