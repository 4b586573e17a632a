"""Idleness: multi-signal and failing safe (the rules themselves are core/idle_rules.py). A
machine whose agent says nothing goes on (GPU under its threshold, nobody typing) for
`pause_after_minutes`, after a setup grace period, is hibernated; a hibernated machine becomes
`deleted` after `delete_after_minutes`. In serverless mode requests through the gateway count
too, and an idle machine is paused after the mode's `idle_timeout_minutes` instead."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core import idle_rules
    from core.contracts.agent import AgentReport
    from core.contracts.serverless import TrafficReport
    from core.contracts.states import MachineState
    from workflows.machine.kernel import IDLE_AFTER_BOOT_PATCH, MachineKernel

S = MachineState
# The states a boot ends from: create and start, restart, wake, resume.
_BOOTS = frozenset({S.STARTING, S.RESTARTING, S.WAKING, S.RESUMING, S.FAILING_OVER})


class IdleWork(Enum):
    """What idleness asks of the run loop now."""

    IDLE = "idle"  # running with nothing going on since the deadline: show it idle
    BUSY = "busy"  # idle, but something is going on again
    HIBERNATE = "hibernate"
    PAUSE = "pause"  # serverless mode: idle past its timeout
    MIGRATE = "migrate"  # a machine with a standby: idle past its window, moves to the CPU
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
            # The agent's first report comes while the boot's hooks still run, and the API
            # sends only transitions: before this patch an agent that said "idle" then was
            # never heard again, and the machine never went to sleep.
            if self._agent_idle() and workflow.patched(IDLE_AFTER_BOOT_PATCH):
                h.idle_since = workflow.now()
        self.recompute()

    def _agent_idle(self) -> bool:
        """What the agent said last, from this boot's install on: idle (unknown is busy)."""
        agent = self.k.s.agent
        if agent.online is not True or agent.last_report_at is None:
            return False
        said = AgentReport(
            online=True,
            at=agent.last_report_at,
            gpu_busy=agent.gpu_busy,
            busy=agent.busy,
            last_input_at=agent.last_input_at,
        )
        return not self.is_busy(said)

    def on_report(self, report: AgentReport) -> None:
        h = self.k.s.hibernation
        if self.is_busy(report):
            h.idle_since = None
        elif h.idle_since is None and self.k.s.state.keeps_idleness():
            h.idle_since = report.at
        self.recompute()

    def is_busy(self, report: AgentReport) -> bool:
        return idle_rules.agent_is_busy(report, self.k.policy.agent_interval_seconds)

    def on_traffic(self, report: TrafficReport) -> None:
        """A serverless gateway's report: requests keep the machine busy until their last byte."""
        idle_rules.apply_traffic(self.k.s.serverless, report, workflow.now())
        self.recompute()

    @property
    def serverless(self) -> bool:
        return self.k.s.serverless.config.enabled

    def idle_from(self) -> datetime | None:
        """When idleness starts to count: idle since then, past the setup grace period and, in
        serverless mode, past the last request."""
        s = self.k.s
        h = s.hibernation
        if h.idle_since is None or not s.state.keeps_idleness():
            return None
        quiet = idle_rules.traffic_quiet_from(s.serverless) if self.serverless else None
        return idle_rules.idle_start(h.idle_since, h.grace_until, quiet)

    def sleep_seconds(self) -> int | None:
        """Idle time before the machine is put to sleep (None: it is not)."""
        s = self.k.s
        if self.serverless:
            return s.serverless.config.idle_timeout_seconds
        migrate = self.k.hooks.idle_migrate_seconds()
        if migrate is not None:
            return migrate
        return s.config.pause_after_minutes * 60 if s.config.enabled else None

    def recompute(self) -> None:
        """Absolute deadlines from the state: after every message and transition."""
        s = self.k.s
        h = s.hibernation
        config = s.config
        seconds = self.sleep_seconds()
        h.hibernate_at = None
        if seconds is not None:
            h.hibernate_at = idle_rules.sleep_due_at(self.idle_from(), seconds)
            if h.hibernate_at is not None and h.retry_at is not None:
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
                if self.serverless:
                    return IdleWork.PAUSE
                if self.k.hooks.idle_migrate_seconds() is not None:
                    return IdleWork.MIGRATE
                return IdleWork.HIBERNATE
        if s.state is S.HIBERNATED and h.delete_at is not None and now >= h.delete_at:
            return IdleWork.DELETE
        return None
