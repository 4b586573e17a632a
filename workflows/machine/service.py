"""The machine's service: its on-start command, run by Dumont after every boot (create, start,
restart, wake), once the workspace is in place, so the service comes back by itself. The
provider's own onstart is not used for it: on a wake it would run before the restore, on an
empty disk. A start that fails is an event and the machine's reason; the machine still runs.

Published ports and the environment travel with the spec to every instance the provider
creates; the ports' public addresses come back with the instance (provisioning)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import ActivityName
    from core.contracts.events import EventType
    from core.contracts.service import RunOnStartInput, RunOnStartResult
    from workflows.machine import activities
    from workflows.machine.kernel import MachineKernel, failure


class Service:
    def __init__(self, kernel: MachineKernel) -> None:
        self.k = kernel
        kernel.hooks.after_boot.append(self._after_boot)

    async def _after_boot(self, what: str) -> str | None:
        k, s = self.k, self.k.s
        command = s.spec.on_start
        if command is None or not k.runs_on_start:
            return None
        assert s.instance is not None
        problem: str | None = None
        note = ""
        try:
            result = await activities.call(
                ActivityName.RUN_ON_START,
                RunOnStartInput(
                    machine_id=s.machine_id,
                    instance=s.instance,
                    command=command,
                    env=dict(s.spec.env),
                    boot_id=workflow.uuid4().hex[:12],
                ),
                RunOnStartResult,
                k.policy,
                summary="start the on-start command",
            )
        except ActivityError as err:
            _, problem = failure(err)
        else:
            if not result.started:
                problem = result.detail or "not started"
            elif result.exit_status == 0:
                note = " (it exited 0 at once)"
        if problem is not None:
            await k.record_event(EventType.ON_START_FAILED, f"on-start failed: {problem}")
            return f"on-start failed: {problem}"
        await k.record_event(EventType.ON_START_STARTED, f"on-start started after {what}{note}")
        return None
