"""The agent on each machine, as the machine workflow sees it: its status, the reports it sends
on transitions, and its install."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.contracts.machine import InstanceInfo


@dataclass(kw_only=True)
class AgentStatus:
    """What the machine workflow knows of its agent; deadlines are absolute so that a
    continue-as-new or a worker restart keeps them."""

    online: bool | None = None  # None: no report since the last install
    gpu_busy: bool | None = None
    # The newest report's whole verdict (`AgentReport.busy`).
    busy: bool | None = None
    gpu_utilization: float | None = None
    active_users: int | None = None
    last_input_at: datetime | None = None
    # `at` of the newest report applied; older or equal reports are ignored.
    last_report_at: datetime | None = None
    installed_at: datetime | None = None
    install_error: str | None = None
    # An agent with no report by then is taken as offline.
    report_due_by: datetime | None = None
    # When the next re-install is due; None when none is wanted.
    reinstall_at: datetime | None = None
    last_reinstall_at: datetime | None = None
    reinstalls: int = 0


@dataclass(kw_only=True)
class AgentReport:
    """Signal `agent_report`: sent by the API (or the fleet monitor) on a TRANSITION only —
    online↔offline, busy↔idle — never on every heartbeat, which go to the database."""

    online: bool
    at: datetime
    gpu_busy: bool | None = None  # None: the GPU could not be read, which counts as busy
    # The whole verdict: GPU at or above threshold, unreadable, or a keystroke in the interval.
    # None on old reports: the workflow then judges from gpu_busy and last_input_at.
    busy: bool | None = None
    gpu_utilization: float | None = None
    active_users: int | None = None
    last_input_at: datetime | None = None


@dataclass(kw_only=True)
class InstallAgentInput:
    machine_id: str
    instance: InstanceInfo


@dataclass(kw_only=True)
class InstallAgentResult:
    """`installed=False` when the provider does not report the instance running (nothing was
    done); `detail` says what happened either way."""

    installed: bool
    detail: str | None = None
