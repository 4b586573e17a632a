"""Starting machine workflows against a worker with fake activities."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from core.contracts import machine_workflow_id
from core.contracts.machine import MachineSpec
from core.contracts.workflow import MachineInput, MachineResult, MachineSnapshot
from tests.workflows.fakes import FakeCloud
from workflows.machine import MachineWorkflow

SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch:latest", disk_gb=40, region="EU")

MachineHandle = WorkflowHandle[MachineWorkflow, MachineResult]

SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


@asynccontextmanager
async def fake_worker(client: Client, cloud: FakeCloud) -> AsyncIterator[str]:
    """A worker on a fresh task queue; yields the queue's name."""
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[MachineWorkflow],
        activities=cloud.activities(),
        max_heartbeat_throttle_interval=timedelta(milliseconds=500),
        default_heartbeat_throttle_interval=timedelta(milliseconds=500),
    ):
        yield task_queue


async def start_machine(client: Client, task_queue: str, spec: MachineSpec = SPEC) -> MachineHandle:
    machine_id = f"m{uuid.uuid4().hex[:10]}"
    return await client.start_workflow(
        MachineWorkflow.run,
        MachineInput(machine_id=machine_id, owner_id="u_test", spec=spec),
        id=machine_workflow_id(machine_id),
        task_queue=task_queue,
    )


async def workflow_tasks(handle: WorkflowHandle[Any, Any]) -> int:
    """How many workflow tasks the run has completed: each time it woke and ran."""
    history = await handle.fetch_history()
    return sum(event.event_type == COMPLETED for event in history.events)


async def signals_processed(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until the workflow has run a task after the last signal it received, so that a
    query answers with every signal applied."""
    for _ in range(300):
        history = await handle.fetch_history()
        kinds = [event.event_type for event in history.events]
        signals = [i for i, kind in enumerate(kinds) if kind == SIGNALED]
        if not signals:  # not in the history yet
            await asyncio.sleep(0.05)
            continue
        signalled = signals[-1]
        if COMPLETED in kinds[signalled:]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never processed its last signal")


async def written(handle: MachineHandle) -> MachineSnapshot:
    """Until the workflow's outbox is empty: every event it recorded so far has been written
    (the workflow records without waiting for the database; its flusher writes soon after)."""
    for _ in range(600):
        snapshot = await handle.query(MachineWorkflow.state)
        if not snapshot.outbox:
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError(f"{handle.id} never wrote its outbox")
