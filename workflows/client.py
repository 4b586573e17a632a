"""`MachineClient`: the one way anything outside the worker talks to a machine's workflow (the
API's routes and heartbeat ingest, the fleet monitor, schedule triggers).

Handles are typed (`get_workflow_handle_for(MachineWorkflow.run, ...)`), so a renamed message
fails type checking instead of at run time. Temporal's errors are translated here, once, into
the typed errors below; any other `RPCError` (Temporal unreachable, overloaded) propagates for
the caller to retry or answer 503.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar, overload

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from core import search_attributes
from core.contracts import machine_workflow_id
from core.contracts.activities import ActivityName
from core.contracts.agent import AgentReport
from core.contracts.errors import ErrorType
from core.contracts.hibernation import (
    ConfigureInput,
    ConfigureResult,
    HibernateInput,
    HibernateResult,
    WakeInput,
    WakeResult,
)
from core.contracts.machine import ActionInput, ActionResult, MachineSpec, SshKeysChanged
from core.contracts.serverless import (
    ColdStartGaveUp,
    ServerlessInput,
    ServerlessResult,
    TrafficReport,
    WakeForRequestInput,
    WakeForRequestResult,
)
from core.contracts.standby import (
    MigrateInput,
    MigrateResult,
    ProviderEvent,
    StandbyConfig,
    StandbyConfigInput,
    StandbyView,
)
from core.contracts.states import MachineState
from core.contracts.workflow import MachineInput, MachineResult
from workflows.machine import MachineWorkflow

LifecycleAction = Literal["stop", "start", "restart", "destroy", "pause", "resume"]
Operation = Literal["snapshot", "restore"]
MachineHandle = WorkflowHandle[MachineWorkflow, MachineResult]

In = TypeVar("In")
Out = TypeVar("Out")

# A validator's refusal, or an accepted update overtaken (by destroy) or refused under the
# lock: the request was wrong for the machine's state, nothing failed.
REJECTION_TYPES = frozenset(
    {
        ErrorType.INVALID_TRANSITION,
        ErrorType.SUPERSEDED,
        ErrorType.UNSUPPORTED,
        ErrorType.INVALID_INPUT,
        ErrorType.ON_STANDBY,
    }
)

_ACTIONS: dict[
    LifecycleAction, UpdateMethodMultiParam[[MachineWorkflow, ActionInput], ActionResult]
]
_ACTIONS = {
    "stop": MachineWorkflow.stop,
    "start": MachineWorkflow.start,
    "restart": MachineWorkflow.restart,
    "destroy": MachineWorkflow.destroy,
    "pause": MachineWorkflow.pause,
    "resume": MachineWorkflow.resume,
}

_OPERATIONS: dict[str, Operation] = {
    ActivityName.SNAPSHOT_WORKSPACE.value: "snapshot",
    ActivityName.RESTORE_WORKSPACE.value: "restore",
}


class MachineClientError(Exception):
    def __init__(self, machine_id: str, message: str) -> None:
        super().__init__(message)
        self.machine_id = machine_id
        self.message = message


class MachineNotFound(MachineClientError):
    """No workflow for this machine."""

    def __init__(self, machine_id: str) -> None:
        super().__init__(machine_id, f"machine {machine_id} not found")


class MachineDestroyed(MachineClientError):
    """The machine's workflow has ended: it was destroyed."""

    def __init__(self, machine_id: str) -> None:
        super().__init__(machine_id, "machine is destroyed")


class MachineExists(MachineClientError):
    """A workflow with this machine's id exists (or existed: ids are never reused)."""

    def __init__(self, machine_id: str) -> None:
        super().__init__(machine_id, "a machine with this id already exists")


class ActionRejected(MachineClientError):
    """The machine refused the request: its state forbids it, its provider cannot do it, or
    the input is out of range. `type` says which (`ErrorType`)."""

    def __init__(self, machine_id: str, problem: str, type: str | None) -> None:
        super().__init__(machine_id, problem)
        self.problem = problem
        self.type = type


class ActionFailed(MachineClientError):
    """The machine accepted the request and could not carry it out; its state says why."""

    def __init__(self, machine_id: str, problem: str) -> None:
        super().__init__(machine_id, problem)
        self.problem = problem


class StillRunning(MachineClientError):
    """The wait for the outcome ran out; the update itself goes on."""

    def __init__(self, machine_id: str) -> None:
        super().__init__(machine_id, "the action is still running")


def _update_error(machine_id: str, err: WorkflowUpdateFailedError) -> MachineClientError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        if cause.type in REJECTION_TYPES:
            return ActionRejected(machine_id, cause.message, cause.type)
        return ActionFailed(machine_id, cause.message)
    return ActionFailed(machine_id, str(cause))


@contextmanager
def _translated(machine_id: str) -> Iterator[None]:
    try:
        yield
    except WorkflowUpdateFailedError as err:
        raise _update_error(machine_id, err) from err
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise StillRunning(machine_id) from err
    except WorkflowAlreadyStartedError as err:
        raise MachineExists(machine_id) from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        if "already completed" in err.message:
            raise MachineDestroyed(machine_id) from err
        raise MachineNotFound(machine_id) from err


async def raise_if_rejected(update: WorkflowUpdateHandle[Any]) -> None:
    """Raise the rejection of an update started with `wait_for_stage=ACCEPTED`.

    A rejected update never reaches ACCEPTED: the server answers with its failed outcome, which
    the SDK (temporalio 1.35) keeps on the handle instead of raising. `result()` on a known
    outcome makes no network call, and raises the validator's rejection. Pinned by
    tests/workflows/test_client.py: drop this once the SDK raises by itself.
    """
    if update._known_outcome is not None:
        await update.result()


class MachineClient:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _handle(self, machine_id: str) -> MachineHandle:
        return self.client.get_workflow_handle_for(
            MachineWorkflow.run, machine_workflow_id(machine_id)
        )

    async def start(
        self,
        *,
        machine_id: str,
        owner_id: str,
        spec: MachineSpec,
        task_queue: str,
        standby: StandbyConfig | None = None,
    ) -> MachineHandle:
        """Start the machine's workflow. A machine id is never reused, even after destroy."""
        with _translated(machine_id):
            return await self.client.start_workflow(
                MachineWorkflow.run,
                MachineInput(machine_id=machine_id, owner_id=owner_id, spec=spec, standby=standby),
                id=machine_workflow_id(machine_id),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(
                            search_attributes.MACHINE_STATE, MachineState.STARTING.value
                        ),
                        SearchAttributePair(search_attributes.MACHINE_OWNER, owner_id),
                        SearchAttributePair(search_attributes.GPU_NAME, spec.gpu_name or "cpu"),
                    ]
                ),
            )

    async def terminate(self, machine_id: str, *, reason: str) -> None:
        with _translated(machine_id):
            await self._handle(machine_id).terminate(reason=reason)

    async def _update(
        self,
        machine_id: str,
        update: UpdateMethodMultiParam[[MachineWorkflow, In], Out],
        arg: In,
        *,
        wait: bool,
        update_id: str | None,
    ) -> Out | None:
        """Wait for the outcome (wait) or only until the machine accepted the request (None).
        Requests with the same `update_id` are one request: a retry attaches to the first."""
        handle = self._handle(machine_id)
        with _translated(machine_id):
            if wait:
                return await handle.execute_update(update, arg, id=update_id)
            started = await handle.start_update(
                update, arg, id=update_id, wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
            await raise_if_rejected(started)
            return None

    @overload
    async def act(
        self,
        machine_id: str,
        action: LifecycleAction,
        *,
        reason: str | None,
        wait: Literal[True],
        update_id: str | None = None,
    ) -> ActionResult: ...

    @overload
    async def act(
        self,
        machine_id: str,
        action: LifecycleAction,
        *,
        reason: str | None,
        wait: bool,
        update_id: str | None = None,
    ) -> ActionResult | None: ...

    async def act(
        self,
        machine_id: str,
        action: LifecycleAction,
        *,
        reason: str | None,
        wait: bool,
        update_id: str | None = None,
    ) -> ActionResult | None:
        """Stop, start, restart, destroy, pause or resume the machine."""
        return await self._update(
            machine_id, _ACTIONS[action], ActionInput(reason=reason), wait=wait, update_id=update_id
        )

    async def configure(self, machine_id: str, input: ConfigureInput) -> ConfigureResult:
        result = await self._update(
            machine_id, MachineWorkflow.configure, input, wait=True, update_id=None
        )
        assert result is not None
        return result

    @overload
    async def hibernate(
        self,
        machine_id: str,
        input: HibernateInput,
        *,
        wait: Literal[True],
        update_id: str | None = None,
    ) -> HibernateResult: ...

    @overload
    async def hibernate(
        self, machine_id: str, input: HibernateInput, *, wait: bool, update_id: str | None = None
    ) -> HibernateResult | None: ...

    async def hibernate(
        self, machine_id: str, input: HibernateInput, *, wait: bool, update_id: str | None = None
    ) -> HibernateResult | None:
        """Snapshot the workspace and destroy the instance."""
        return await self._update(
            machine_id, MachineWorkflow.hibernate, input, wait=wait, update_id=update_id
        )

    @overload
    async def wake(
        self,
        machine_id: str,
        input: WakeInput,
        *,
        wait: Literal[True],
        update_id: str | None = None,
    ) -> WakeResult: ...

    @overload
    async def wake(
        self, machine_id: str, input: WakeInput, *, wait: bool, update_id: str | None = None
    ) -> WakeResult | None: ...

    async def wake(
        self, machine_id: str, input: WakeInput, *, wait: bool, update_id: str | None = None
    ) -> WakeResult | None:
        """Rent a matching offer and restore the workspace onto it."""
        return await self._update(
            machine_id, MachineWorkflow.wake, input, wait=wait, update_id=update_id
        )

    async def serverless_mode(self, machine_id: str, input: ServerlessInput) -> ServerlessResult:
        """Turn serverless mode on or off (or change its idle timeout)."""
        result = await self._update(
            machine_id, MachineWorkflow.serverless_mode, input, wait=True, update_id=None
        )
        assert result is not None
        return result

    async def configure_standby(self, machine_id: str, input: StandbyConfigInput) -> StandbyView:
        """Set the machine's standby config (`enabled=False` removes the standby); the
        workflow creates or removes the standby itself, after answering."""
        result = await self._update(
            machine_id, MachineWorkflow.configure_standby, input, wait=True, update_id=None
        )
        assert result is not None
        return result

    @overload
    async def migrate(
        self,
        machine_id: str,
        input: MigrateInput,
        *,
        wait: Literal[True],
        update_id: str | None = None,
    ) -> MigrateResult: ...

    @overload
    async def migrate(
        self, machine_id: str, input: MigrateInput, *, wait: bool, update_id: str | None = None
    ) -> MigrateResult | None: ...

    async def migrate(
        self, machine_id: str, input: MigrateInput, *, wait: bool, update_id: str | None = None
    ) -> MigrateResult | None:
        """Move the machine onto its standby (`to=cpu`) or back onto a new GPU (`to=gpu`)."""
        return await self._update(
            machine_id, MachineWorkflow.migrate, input, wait=wait, update_id=update_id
        )

    async def wake_for_request(
        self, machine_id: str, input: WakeForRequestInput
    ) -> WakeForRequestResult:
        """Until the machine is up for a held request: resumed if it was paused."""
        result = await self._update(
            machine_id, MachineWorkflow.wake_for_request, input, wait=True, update_id=None
        )
        assert result is not None
        return result

    async def report_traffic(self, machine_id: str, report: TrafficReport) -> None:
        with _translated(machine_id):
            await self._handle(machine_id).signal(MachineWorkflow.serverless_traffic, report)

    async def cold_start_gave_up(self, machine_id: str, input: ColdStartGaveUp) -> None:
        with _translated(machine_id):
            await self._handle(machine_id).signal(MachineWorkflow.serverless_gave_up, input)

    async def report_agent(self, machine_id: str, report: AgentReport) -> None:
        """Tell the machine what its agent did (or that it fell silent)."""
        with _translated(machine_id):
            await self._handle(machine_id).signal(MachineWorkflow.agent_report, report)

    async def provider_event(self, machine_id: str, event: ProviderEvent) -> None:
        """Tell the machine what its provider says of an instance (the reconciler)."""
        with _translated(machine_id):
            await self._handle(machine_id).signal(MachineWorkflow.provider_event, event)

    async def keys_changed(self, machine_ids: Iterable[str], fingerprint: str) -> None:
        """Tell each machine its owner's SSH keys changed. Machines that ended are skipped."""
        for machine_id in machine_ids:
            try:
                with _translated(machine_id):
                    await self._handle(machine_id).signal(
                        MachineWorkflow.ssh_keys_changed, SshKeysChanged(fingerprint=fingerprint)
                    )
            except (MachineNotFound, MachineDestroyed):
                continue

    async def operation_in_flight(self, machine_id: str) -> tuple[Operation, dict[str, Any]] | None:
        """The snapshot or restore the machine runs now, with its last heartbeat's progress
        (`core.contracts.snapshots.SnapshotProgress` fields; empty before the first heartbeat)."""
        with _translated(machine_id):
            description = await self._handle(machine_id).describe()
        for pending in description.raw_description.pending_activities:
            operation = _OPERATIONS.get(pending.activity_type.name)
            if operation is None:
                continue
            details: dict[str, Any] = {}
            payloads = list(pending.heartbeat_details.payloads)
            if payloads:
                decoded = await self.client.data_converter.decode(payloads[:1])
                if decoded and isinstance(decoded[0], dict):
                    details = decoded[0]
            return operation, details
        return None
