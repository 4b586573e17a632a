"""MachineWorkflow: one long-lived workflow per machine (SKELETON: the interface is fixed,
the body is being written)."""

from __future__ import annotations

from temporalio import workflow

from core.types import ActionInput, ActionResult, MachineInput, MachineResult, MachineSnapshot


@workflow.defn
class MachineWorkflow:
    @workflow.init
    def __init__(self, input: MachineInput) -> None:
        self._snapshot = input.carried or MachineSnapshot(
            machine_id=input.machine_id, owner_id=input.owner_id, spec=input.spec
        )

    @workflow.run
    async def run(self, input: MachineInput) -> MachineResult:
        raise NotImplementedError

    @workflow.query
    def state(self) -> MachineSnapshot:
        return self._snapshot

    @workflow.update
    async def stop(self, input: ActionInput) -> ActionResult:
        raise NotImplementedError

    @workflow.update
    async def start(self, input: ActionInput) -> ActionResult:
        raise NotImplementedError

    @workflow.update
    async def restart(self, input: ActionInput) -> ActionResult:
        raise NotImplementedError

    @workflow.update
    async def destroy(self, input: ActionInput) -> ActionResult:
        raise NotImplementedError
