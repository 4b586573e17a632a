"""The agent on the machine: installed after every boot (a failed install leaves the machine
running, with why), its transitions applied as they arrive, and an agent that goes offline, or
never reports after its install, re-installed at most once per `agent_reinstall_seconds` while
the machine is up."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import ActivityName
    from core.contracts.agent import AgentReport, InstallAgentInput, InstallAgentResult
    from core.contracts.events import EventType
    from core.contracts.states import MachineState
    from workflows.machine import activities
    from workflows.machine.kernel import MachineKernel, failure

# An agent with no report for this many intervals after its install is taken as offline.
FIRST_REPORT_INTERVALS = 3


class AgentCare:
    def __init__(self, kernel: MachineKernel) -> None:
        self.k = kernel
        kernel.hooks.after_boot.append(self._after_boot)
        kernel.hooks.on_transition.append(self._on_transition)
        kernel.deadlines.watch("agent", self._deadlines)

    def _on_transition(self, _before: MachineState, after: MachineState) -> None:
        if not after.is_up():  # no agent is expected to report
            self.k.s.agent.report_due_by = self.k.s.agent.reinstall_at = None

    async def _after_boot(self, what: str) -> str | None:
        problem = await self.install(f"installed after {what}")
        return None if problem is None else f"agent not installed: {problem}"

    def expected(self) -> bool:
        """Whether an agent should be running (and looked after) now."""
        return self.k.s.state.is_up() and not self.k.destroy_requested

    def _deadlines(self) -> list[datetime | None]:
        if not self.expected():
            return []
        agent = self.k.s.agent
        return [agent.report_due_by, agent.reinstall_at]

    def work_due(self) -> bool:
        now = workflow.now()
        return any(t is not None and now >= t for t in self._deadlines())

    def apply(self, report: AgentReport) -> bool:
        """Apply a report; False when it is no newer than the last one applied (ignored)."""
        agent = self.k.s.agent
        if agent.last_report_at is not None and report.at <= agent.last_report_at:
            return False
        agent.last_report_at = report.at
        agent.online = report.online
        agent.gpu_busy = report.gpu_busy
        agent.busy = report.busy
        agent.gpu_utilization = report.gpu_utilization
        agent.active_users = report.active_users
        agent.last_input_at = report.last_input_at
        if report.online:
            agent.report_due_by = agent.reinstall_at = None
            agent.install_error = None
        elif self.expected() and agent.reinstall_at is None:
            agent.reinstall_at = self._earliest_reinstall()
        return True

    async def install(self, context: str) -> str | None:
        """Install (or re-install) the agent; None when it runs, else why not."""
        k, s = self.k, self.k.s
        agent = s.agent
        assert s.instance is not None
        problem: str | None = None
        detail = ""
        keeps_reports = k.lean_boot
        if keeps_reports:
            agent.online = None  # unknown until a report of this install arrives
        try:
            result = await activities.call(
                ActivityName.INSTALL_AGENT,
                InstallAgentInput(machine_id=s.machine_id, instance=s.instance),
                InstallAgentResult,
                k.policy,
                summary="install the agent",
            )
        except ActivityError as err:
            _, problem = failure(err)
        else:
            if not result.installed:
                problem = result.detail or "not installed"
            elif result.detail:
                detail = f": {result.detail}"
        now = workflow.now()
        heard = keeps_reports and agent.online is True  # it reported while being installed
        if not keeps_reports:
            agent.online = None
        if problem is None:
            agent.installed_at = now
            agent.install_error = agent.reinstall_at = None
            agent.report_due_by = None
            if not heard:
                agent.report_due_by = now + timedelta(
                    seconds=k.policy.agent_interval_seconds * FIRST_REPORT_INTERVALS
                )
        else:
            agent.install_error = problem
            agent.report_due_by = None
            agent.reinstall_at = now + timedelta(seconds=k.policy.agent_reinstall_seconds)
        if s.state.is_up():  # a re-install: the running machine's reason follows the agent
            s.reason = None if problem is None else f"agent not installed: {problem}"
        if problem is None:
            await k.record_event(EventType.AGENT_INSTALLED, context + detail)
        else:
            await k.record_event(EventType.AGENT_INSTALL_FAILED, f"agent not installed: {problem}")
        return problem

    def _why_reinstall(self) -> str:
        agent = self.k.s.agent
        if agent.install_error is not None:
            return "the last install failed"
        heard_since_install = agent.last_report_at is not None and (
            agent.installed_at is None or agent.last_report_at > agent.installed_at
        )
        return "agent went offline" if heard_since_install else "agent never reported after install"

    def _earliest_reinstall(self) -> datetime:
        last = self.k.s.agent.last_reinstall_at
        now = workflow.now()
        if last is None:
            return now
        return max(now, last + timedelta(seconds=self.k.policy.agent_reinstall_seconds))

    async def upkeep(self) -> None:
        """An agent deadline passed: a missing first report makes the agent offline; a due
        re-install runs (cancelled by a destroy, like a boot)."""
        async with self.k.lock:
            if not self.work_due():
                return  # the state changed while this waited its turn
            agent = self.k.s.agent
            now = workflow.now()
            if agent.report_due_by is not None and now >= agent.report_due_by:
                agent.report_due_by = None
                agent.online = False
                agent.reinstall_at = agent.reinstall_at or self._earliest_reinstall()
            assert agent.reinstall_at is not None
            if now < agent.reinstall_at:
                return
            why = self._why_reinstall()
            agent.reinstall_at = None
            agent.last_reinstall_at = now
            agent.reinstalls += 1
            await self.k.cancellable(lambda: self.install(f"re-installed: {why}"))
