"""Idleness: multi-signal and failing safe. A machine whose agent says nothing goes on (GPU
under its threshold, nobody typing) for `pause_after_minutes`, after a setup grace period, is
hibernated; a hibernated machine becomes `deleted` after `delete_after_minutes`. An agent
offline or a GPU unread counts as busy."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.contracts.agent import AgentReport
    from core.contracts.states import MachineState
    from workflows.machine.kernel import MachineKernel

S = MachineState
# The states a boot ends from: create and start, restart, wake, resume.
_BOOTS = frozenset({S.STARTING, S.RESTARTING, S.WAKING, S.RESUMING})


class IdleWork(Enum):
    """What idleness asks of the run loop now."""

    IDLE = "idle"  # running with nothing going on since the deadline: show it idle
    BUSY = "busy"  # idle, but something is going on again
    HIBERNATE = "hibernate"
    DELETE = "delete"


class Idleness:
    def __init__(self, kernel: MachineKernel) -> None:
        self.k = kernel
        kernel.hooks.on_transition.append(self._on_transition)
        kernel.hooks.idle_since = self.idle_from
        kernel.deadlines.watch("idleness", self._deadlines)

    def _on_transition(self, before: MachineState, after: MachineState) -> None:
        h = self.k.s.hibernation
        if not after.keeps_idleness():
            h.idle_since = None
        if after is S.RUNNING and before in _BOOTS:
            # Up after a boot (its after-boot hooks done): idleness counts only after a grace
            # period for setup.
            h.idle_since = h.retry_at = None
            h.grace_until = workflow.now() + timedelta(seconds=self.k.policy.idle_grace_seconds)
        self.recompute()

    def on_report(self, report: AgentReport) -> None:
        h = self.k.s.hibernation
        if self.is_busy(report):
            h.idle_since = None
        elif h.idle_since is None and self.k.s.state.keeps_idleness():
            h.idle_since = report.at
        self.recompute()

    def is_busy(self, report: AgentReport) -> bool:
        """Fails safe: an agent offline or a GPU unread is busy; so is recent SSH input."""
        if not report.online:
            return True
        if report.busy is not None:
            return report.busy
        if report.gpu_busy is not False:
            return True
        interval = timedelta(seconds=self.k.policy.agent_interval_seconds)
        return report.last_input_at is not None and report.last_input_at >= report.at - interval

    def idle_from(self) -> datetime | None:
        """When idleness starts to count: idle since then, and past the setup grace period."""
        s = self.k.s
        h = s.hibernation
        if h.idle_since is None or not s.state.keeps_idleness():
            return None
        if h.grace_until is not None and h.grace_until > h.idle_since:
            return h.grace_until
        return h.idle_since

    def recompute(self) -> None:
        """Absolute deadlines from the state: after every message and transition."""
        s = self.k.s
        h = s.hibernation
        config = s.config
        start = self.idle_from()
        h.hibernate_at = None
        if start is not None and config.enabled:
            h.hibernate_at = start + timedelta(minutes=config.pause_after_minutes)
            if h.retry_at is not None:
                h.hibernate_at = max(h.hibernate_at, h.retry_at)
        h.delete_at = None
        if s.state is S.HIBERNATED and h.hibernated_at is not None:
            h.delete_at = h.hibernated_at + timedelta(minutes=config.delete_after_minutes)
        self.k.deadlines.check()

    def _deadlines(self) -> list[datetime | None]:
        h = self.k.s.hibernation
        return [self.idle_from(), h.hibernate_at, h.delete_at]

    def work(self) -> IdleWork | None:
        k, s = self.k, self.k.s
        if k.destroy_requested or s.policy is None:
            return None
        h = s.hibernation
        now = workflow.now()
        if s.state.is_up():
            start = self.idle_from()
            if start is None or now < start:
                return IdleWork.BUSY if s.state is S.IDLE else None
            if s.state is S.RUNNING:
                return IdleWork.IDLE
            if h.hibernate_at is not None and now >= h.hibernate_at:
                return IdleWork.HIBERNATE
        if s.state is S.HIBERNATED and h.delete_at is not None and now >= h.delete_at:
            return IdleWork.DELETE
        return None
