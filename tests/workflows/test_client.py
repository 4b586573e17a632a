"""`MachineClient` against a machine workflow on fake activities: each Temporal answer comes back
as one typed error; and the SDK behaviour its accepted-only wait works around."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import temporalio
from temporalio import workflow
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.contracts.agent import AgentReport
from core.contracts.errors import ErrorType
from core.contracts.hibernation import ConfigureInput, HibernateInput
from core.contracts.machine import LifecyclePolicy
from core.contracts.states import MachineState
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import SPEC, fake_worker
from tests.workflows.machines import until_state
from workflows.client import (
    ActionRejected,
    MachineClient,
    MachineDestroyed,
    MachineExists,
    MachineNotFound,
    raise_if_rejected,
)

POLICY = LifecyclePolicy(
    boot_timeout_seconds=600, provision_attempts=3, boot_poll_seconds=1, heartbeat_timeout_seconds=2
)


@workflow.defn(sandboxed=False)
class Refuser:
    """Refuses every `ask` in its validator and waits to be told to end."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.update
    def ask(self, _question: str) -> str:
        return "never"

    @ask.validator
    def _refuse(self, _question: str) -> None:
        raise ApplicationError("no", type=ErrorType.INVALID_TRANSITION, non_retryable=True)

    @workflow.signal
    def end(self) -> None:
        self.done = True


async def test_a_rejected_update_awaited_only_until_accepted_needs_the_known_outcome(
    dev_env: WorkflowEnvironment,
) -> None:
    """temporalio 1.35 returns a rejected update's handle from `start_update(ACCEPTED)` without
    raising. If this fails after an SDK upgrade, check whether `raise_if_rejected` is still
    needed (it reads the private `_known_outcome`)."""
    assert temporalio.__version__.startswith("1.35."), temporalio.__version__
    client, queue = dev_env.client, f"refuser-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[Refuser], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await client.start_workflow(Refuser.run, id=queue, task_queue=queue)
        update = await handle.start_update(
            Refuser.ask, "may I?", wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        assert update._known_outcome is not None  # no exception so far: the SDK kept it
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await raise_if_rejected(update)
        assert isinstance(failed.value.cause, ApplicationError)
        assert failed.value.cause.message == "no"
        await handle.signal(Refuser.end)
        await handle.result()


async def test_temporal_answers_become_typed_errors(dev_env: WorkflowEnvironment) -> None:
    machines = MachineClient(dev_env.client)
    missing = f"m-{uuid.uuid4().hex[:12]}"
    with pytest.raises(MachineNotFound):
        await machines.act(missing, "stop", reason=None, wait=True)
    with pytest.raises(MachineNotFound):
        await machines.report_agent(missing, AgentReport(online=False, at=datetime.now(UTC)))
    with pytest.raises(MachineNotFound):
        await machines.operation_in_flight(missing)
    await machines.keys_changed([missing], "SHA256:x")  # skipped, not raised

    async with fake_worker(dev_env.client, FakeCloud(POLICY)) as task_queue:
        machine_id = f"m-{uuid.uuid4().hex[:12]}"
        handle = await machines.start(
            machine_id=machine_id, owner_id="u_test", spec=SPEC, task_queue=task_queue
        )
        with pytest.raises(MachineExists):
            await machines.start(
                machine_id=machine_id, owner_id="u_test", spec=SPEC, task_queue=task_queue
            )
        await until_state(handle, MachineState.RUNNING)
        assert await machines.operation_in_flight(machine_id) is None

        # Refused by the validator, whether the caller waits for the outcome or not.
        for wait in (True, False):
            with pytest.raises(ActionRejected) as rejected:
                await machines.act(machine_id, "start", reason=None, wait=wait)
            assert rejected.value.problem == "machine is already running"
            assert rejected.value.type == ErrorType.INVALID_TRANSITION
        with pytest.raises(ActionRejected) as invalid:
            await machines.configure(machine_id, ConfigureInput(pause_after_minutes=-5))
        assert invalid.value.type == ErrorType.INVALID_INPUT

        assert await machines.act(machine_id, "stop", reason="night", wait=False) is None
        await until_state(handle, MachineState.STOPPED)
        destroyed = await machines.act(machine_id, "destroy", reason=None, wait=True)
        assert destroyed.state is MachineState.DESTROYED
        await handle.result()

        with pytest.raises(MachineDestroyed):
            await machines.act(machine_id, "start", reason=None, wait=True)
        with pytest.raises(MachineDestroyed):
            await machines.hibernate(machine_id, HibernateInput(), wait=False)
        with pytest.raises(MachineDestroyed):
            await machines.report_agent(machine_id, AgentReport(online=False, at=datetime.now(UTC)))
        await machines.keys_changed([machine_id], "SHA256:x")
