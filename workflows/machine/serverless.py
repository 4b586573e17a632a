"""Serverless mode: an idle machine is paused (not hibernated) after the mode's idle timeout,
and a request held by the gateway resumes it. The gateway (api/gateway/) holds the requests and
forwards them; the workflow hears of traffic at most once per interval per gateway, and of a
held request through one update per machine and gateway, which waits for the machine to be up:
resumes are serialised by the workflow's lock, so any number of gateways trigger one."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.contracts.events import EventType
    from core.contracts.serverless import (
        ColdStartGaveUp,
        ServerlessConfig,
        ServerlessInput,
        ServerlessResult,
        TrafficReport,
        WakeForRequestInput,
        WakeForRequestResult,
    )
    from core.contracts.states import MachineState
    from workflows.machine.idleness import Idleness, IdleWork
    from workflows.machine.kernel import MachineKernel
    from workflows.machine.pause import Pause
    from workflows.machine.transitions import Action

S = MachineState
# A held request resumes a machine in these states; one in any other that is not up (stopped,
# in error) stays as it is: the gateway answers with why.
_RESUMABLE = frozenset({S.PAUSED, S.HIBERNATED, S.DELETED})
# States a held request waits through: each ends up, paused or hibernated.
_UNDER_WAY = frozenset({S.PAUSING, S.RESUMING, S.WAKING, S.STARTING, S.RESTARTING})


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


class Serverless:
    def __init__(self, kernel: MachineKernel, idleness: Idleness, pause: Pause) -> None:
        self.k = kernel
        self.idleness = idleness
        self.pause = pause

    # --- the mode ----------------------------------------------------------------------

    async def configure(self, input: ServerlessInput) -> ServerlessResult:
        k, s = self.k, self.k.s
        before = s.serverless.config
        s.serverless.config = ServerlessConfig(
            enabled=input.enabled, idle_timeout_seconds=input.idle_timeout_seconds
        )
        self.idleness.recompute()
        if before.enabled != input.enabled:
            if input.enabled:
                event = EventType.SERVERLESS_ENABLED
                why = f"pauses after {_duration(input.idle_timeout_seconds)} without requests"
            else:
                event, why = EventType.SERVERLESS_DISABLED, "idle machines hibernate again"
            await k.record_event(event, f"{input.reason}: {why}" if input.reason else why)
        await k.answered()
        return ServerlessResult(machine_id=s.machine_id, state=s.state, config=s.serverless.config)

    def on_traffic(self, report: TrafficReport) -> None:
        if self.k.s.serverless.config.enabled:
            self.idleness.on_traffic(report)

    # --- idle: pause -------------------------------------------------------------------

    async def upkeep(self) -> None:
        k, s = self.k, self.k.s
        async with k.lock:
            if self.idleness.work() is not IdleWork.PAUSE:  # again: the state may have moved
                return
            idle = _duration(s.serverless.config.idle_timeout_seconds)
            why = f"serverless: no requests for {idle}"
            await k.cancellable(lambda: k.guarded(Action.PAUSE, lambda: self.pause.pause(why)))
            if s.state.is_up():  # the pause failed (its snapshot): try again later
                h = s.hibernation
                h.retry_at = workflow.now() + timedelta(
                    seconds=k.policy.auto_hibernate_retry_seconds
                )
                self.idleness.recompute()

    # --- a held request ----------------------------------------------------------------

    async def wake_for_request(self, input: WakeForRequestInput) -> WakeForRequestResult:
        k, s = self.k, self.k.s
        await k.ready()
        cold = not s.state.is_up()
        if cold:
            # Behind whatever holds the lock (a pause finishing, a resume under way).
            async with k.lock:
                if s.state in _RESUMABLE and not k.destroy_requested:
                    await k.cancellable(
                        lambda: k.guarded(Action.RESUME, lambda: self.pause.resume(input.reason))
                    )
            await k.answered()
        problem = None
        if not s.state.is_up():
            problem = s.reason or f"machine is {s.state}"
        return WakeForRequestResult(
            machine_id=s.machine_id,
            state=s.state,
            instance=s.instance if s.state.is_up() else None,
            resumed=cold,
            problem=problem,
        )

    @staticmethod
    def waits_in(state: MachineState) -> bool:
        """Whether a held request for a machine in `state` waits for it (else it is refused)."""
        return state.is_up() or state in _RESUMABLE or state in _UNDER_WAY

    async def gave_up(self, input: ColdStartGaveUp) -> None:
        await self.k.record_event(
            EventType.COLD_START_FAILED,
            f"{input.held} held request(s) answered 503: {input.reason}",
        )
