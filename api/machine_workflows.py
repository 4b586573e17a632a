"""The API's calls into machine workflows: start one, send it an action or an update, tell it
keys changed, and read the snapshot or restore it has in flight."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateStage
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from core import search_attributes
from core.contracts import machine_workflow_id
from core.contracts.activities import ActivityName
from core.contracts.hibernation import (
    ConfigureInput,
    ConfigureResult,
    HibernateInput,
    HibernateResult,
    WakeInput,
    WakeResult,
)
from core.contracts.machine import (
    ActionInput,
    ActionResult,
    MachineKind,
    MachineSpec,
    SshKeysChanged,
)
from core.contracts.states import MachineState
from core.contracts.workflow import MachineInput, MachineResult
from core.models import Machine
from workflows.machine import MachineWorkflow

Action = Literal["stop", "start", "restart", "destroy"]

_UPDATES: dict[Action, UpdateMethodMultiParam[[MachineWorkflow, ActionInput], ActionResult]] = {
    "stop": MachineWorkflow.stop,
    "start": MachineWorkflow.start,
    "restart": MachineWorkflow.restart,
    "destroy": MachineWorkflow.destroy,
}


def spec_of(machine: Machine) -> MachineSpec:
    return MachineSpec(
        kind=MachineKind(machine.kind),
        gpu_name=machine.gpu_name,
        image=machine.image,
        disk_gb=machine.disk_gb,
        num_gpus=machine.num_gpus,
        region=machine.region,
        max_price=machine.max_price,
        min_reliability=machine.min_reliability,
        min_vram_gb=machine.min_vram_gb,
        provider=machine.provider,
    )


def _handle(client: Client, machine_id: str) -> WorkflowHandle[MachineWorkflow, MachineResult]:
    return client.get_workflow_handle_for(MachineWorkflow.run, machine_workflow_id(machine_id))


async def start_machine_workflow(
    client: Client, task_queue: str, machine: Machine
) -> WorkflowHandle[MachineWorkflow, MachineResult]:
    """Start the machine's workflow. A machine id is never reused, even after destroy."""
    return await client.start_workflow(
        MachineWorkflow.run,
        MachineInput(machine_id=machine.id, owner_id=machine.owner_id, spec=spec_of(machine)),
        id=machine_workflow_id(machine.id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search_attributes.MACHINE_STATE, MachineState.STARTING.value),
                SearchAttributePair(search_attributes.MACHINE_OWNER, machine.owner_id),
                SearchAttributePair(search_attributes.GPU_NAME, machine.gpu_name or "cpu"),
            ]
        ),
    )


async def run_action(
    client: Client, machine_id: str, action: Action, reason: str | None
) -> ActionResult:
    """Send the action and wait until the machine has done it."""
    return await _handle(client, machine_id).execute_update(
        _UPDATES[action], ActionInput(reason=reason)
    )


async def send_action(client: Client, machine_id: str, action: Action, reason: str | None) -> None:
    """Send the action and return once the machine accepted it (its validator passed)."""
    await _send(client, machine_id, _UPDATES[action], ActionInput(reason=reason))


In = TypeVar("In")
Out = TypeVar("Out")


async def _send(
    client: Client,
    machine_id: str,
    update: UpdateMethodMultiParam[[MachineWorkflow, In], Out],
    arg: In,
) -> None:
    handle = await _handle(client, machine_id).start_update(
        update, arg, wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    # A rejected update never reaches ACCEPTED: the server answers with its failed outcome,
    # which the SDK (1.35) keeps on the handle instead of raising. `result()` on a known outcome
    # makes no network call, and raises the validator's rejection.
    if handle._known_outcome is not None:
        await handle.result()


async def configure(client: Client, machine_id: str, input: ConfigureInput) -> ConfigureResult:
    return await _handle(client, machine_id).execute_update(MachineWorkflow.configure, input)


async def hibernate(
    client: Client, machine_id: str, input: HibernateInput, *, wait: bool
) -> HibernateResult | None:
    """Hibernate and wait until the instance is gone (None: only until accepted)."""
    if not wait:
        await _send(client, machine_id, MachineWorkflow.hibernate, input)
        return None
    return await _handle(client, machine_id).execute_update(MachineWorkflow.hibernate, input)


async def wake(
    client: Client, machine_id: str, input: WakeInput, *, wait: bool
) -> WakeResult | None:
    """Wake and wait until the machine runs its restored workspace (None: only until
    accepted)."""
    if not wait:
        await _send(client, machine_id, MachineWorkflow.wake, input)
        return None
    return await _handle(client, machine_id).execute_update(MachineWorkflow.wake, input)


_OPERATIONS = {
    ActivityName.SNAPSHOT_WORKSPACE.value: "snapshot",
    ActivityName.RESTORE_WORKSPACE.value: "restore",
}


async def operation_in_flight(client: Client, machine_id: str) -> tuple[str, dict[str, Any]] | None:
    """The snapshot or restore the machine runs now, with its last heartbeat's progress
    (`core.contracts.snapshots.SnapshotProgress` fields; empty before the first heartbeat)."""
    description = await _handle(client, machine_id).describe()
    for pending in description.raw_description.pending_activities:
        operation = _OPERATIONS.get(pending.activity_type.name)
        if operation is None:
            continue
        details: dict[str, Any] = {}
        payloads = list(pending.heartbeat_details.payloads)
        if payloads:
            decoded = await client.data_converter.decode(payloads[:1])
            if decoded and isinstance(decoded[0], dict):
                details = decoded[0]
        return operation, details
    return None


async def notify_keys_changed(client: Client, machine_ids: list[str], fingerprint: str) -> None:
    """Tell each machine its owner's SSH keys changed. Machines that ended are skipped."""
    for machine_id in machine_ids:
        try:
            await _handle(client, machine_id).signal(
                MachineWorkflow.ssh_keys_changed, SshKeysChanged(fingerprint=fingerprint)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
