"""The pause and resume scenarios the recorder (record.py) records, on fake activities."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.contracts.hibernation import ConfigureInput
from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.states import MachineState
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import fake_worker, start_machine
from workflows.machine import MachineWorkflow

S = MachineState


async def _running(handle: WorkflowHandle[MachineWorkflow, Any]) -> None:
    for _ in range(600):
        if (await handle.query(MachineWorkflow.state)).state is S.RUNNING:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("never running")


async def _history(handle: WorkflowHandle[MachineWorkflow, Any]) -> list[tuple[str, str]]:
    await handle.result()
    return [(handle.id, (await handle.fetch_history()).to_json())]


async def pause_resume(env: WorkflowEnvironment, policy: LifecyclePolicy) -> list[tuple[str, str]]:
    """pause → resume on the same host → pause → the host is taken → resume on a new host from
    the snapshot (the stopped instance destroyed) → destroy."""
    cloud = FakeCloud(policy)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _running(handle)
        await handle.execute_update(MachineWorkflow.pause, ActionInput(reason="lunch"))
        await handle.execute_update(MachineWorkflow.resume, ActionInput())
        await handle.execute_update(MachineWorkflow.pause, ActionInput())
        [stopped] = cloud.live()
        cloud.hosts_taken.add(stopped.instance_id)
        await handle.execute_update(MachineWorkflow.resume, ActionInput(reason="back"))
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _history(handle)


async def paused_too_long(
    env: WorkflowEnvironment, policy: LifecyclePolicy
) -> list[tuple[str, str]]:
    """A machine paused past its limit is hibernated; its resume wakes it; destroy."""
    cloud = FakeCloud(policy)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _running(handle)
        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(hibernate_paused_after_minutes=120)
        )
        await handle.execute_update(MachineWorkflow.pause, ActionInput())
        await env.sleep(timedelta(hours=2, minutes=1))
        state = await handle.query(MachineWorkflow.state)
        assert state.state is S.HIBERNATED, state.state
        await handle.execute_update(MachineWorkflow.resume, ActionInput())
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _history(handle)
