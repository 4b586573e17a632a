"""The serverless and idle-after-boot scenarios the recorder (record.py) records, on fake
activities."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.contracts.agent import AgentReport
from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.serverless import (
    ColdStartGaveUp,
    ServerlessInput,
    TrafficReport,
    WakeForRequestInput,
)
from core.contracts.states import MachineState
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import fake_worker, signals_processed, start_machine
from tests.workflows.histories.pause_scenarios import _history, _running
from workflows.machine import MachineWorkflow

S = MachineState


async def _traffic(
    handle: WorkflowHandle[MachineWorkflow, Any], env: WorkflowEnvironment, open_requests: int
) -> None:
    at = await env.get_current_time()
    report = TrafficReport(
        gateway_id="gw-1", at=at, last_request_at=at, open_requests=open_requests, requests=3
    )
    await handle.signal(MachineWorkflow.serverless_traffic, report)
    await signals_processed(handle)


async def serverless(env: WorkflowEnvironment, policy: LifecyclePolicy) -> list[tuple[str, str]]:
    """Serverless on (5 min) → requests, one stream open for a while → idle → paused → a held
    request resumes it → a gateway gives up on a cold start → serverless off → destroy."""
    cloud = FakeCloud(policy)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _running(handle)
        await handle.execute_update(
            MachineWorkflow.serverless_mode, ServerlessInput(enabled=True, idle_timeout_seconds=300)
        )
        at = await env.get_current_time()
        await handle.signal(
            MachineWorkflow.agent_report,
            AgentReport(online=True, at=at, gpu_busy=False, busy=False, gpu_utilization=1.0),
        )
        for _ in range(3):
            await _traffic(handle, env, open_requests=1)
            await env.sleep(timedelta(minutes=1))
        await _traffic(handle, env, open_requests=0)
        await env.sleep(timedelta(minutes=7))
        state = await handle.query(MachineWorkflow.state)
        assert state.state is S.PAUSED, state.state
        woke = await handle.execute_update(MachineWorkflow.wake_for_request, WakeForRequestInput())
        assert woke.state is S.RUNNING and woke.resumed
        await handle.signal(
            MachineWorkflow.serverless_gave_up,
            ColdStartGaveUp(gateway_id="gw-1", reason="no answer within 300 s", held=2),
        )
        await handle.execute_update(MachineWorkflow.serverless_mode, ServerlessInput(enabled=False))
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _history(handle)


async def idle_after_boot(
    env: WorkflowEnvironment, policy: LifecyclePolicy
) -> list[tuple[str, str]]:
    """The agent reports idle while it is installed, and never again: the machine hibernates;
    woken in serverless mode by a held request, it pauses again; destroy."""
    cloud = FakeCloud(policy)
    machine: list[WorkflowHandle[MachineWorkflow, Any]] = []

    async def agent_reports_idle() -> None:
        at = await env.get_current_time()
        report = AgentReport(online=True, at=at, gpu_busy=False, busy=False, gpu_utilization=1.0)
        await machine[0].signal(MachineWorkflow.agent_report, report)
        await signals_processed(machine[0])

    cloud.during_install = agent_reports_idle
    async with fake_worker(env.client, cloud) as task_queue:
        machine.append(await start_machine(env.client, task_queue))
        handle = machine[0]
        await _running(handle)
        await env.sleep(timedelta(minutes=6))
        state = await handle.query(MachineWorkflow.state)
        assert state.state is S.HIBERNATED, state.state
        await handle.execute_update(
            MachineWorkflow.serverless_mode, ServerlessInput(enabled=True, idle_timeout_seconds=300)
        )
        await handle.execute_update(MachineWorkflow.wake_for_request, WakeForRequestInput())
        await env.sleep(timedelta(minutes=8))
        state = await handle.query(MachineWorkflow.state)
        assert state.state is S.PAUSED, state.state
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _history(handle)
