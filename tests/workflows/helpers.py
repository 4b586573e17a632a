"""Starting machine workflows against a worker with fake activities."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from core.types import MachineInput, MachineResult, MachineSpec, machine_workflow_id
from tests.workflows.fakes import FakeCloud
from workflows.machine import MachineWorkflow

SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch:latest", disk_gb=40, region="EU")

MachineHandle = WorkflowHandle[MachineWorkflow, MachineResult]


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


async def start_machine(client: Client, task_queue: str) -> MachineHandle:
    machine_id = f"m{uuid.uuid4().hex[:10]}"
    return await client.start_workflow(
        MachineWorkflow.run,
        MachineInput(machine_id=machine_id, owner_id="u_test", spec=SPEC),
        id=machine_workflow_id(machine_id),
        task_queue=task_queue,
    )
