"""An agent's first report comes while the boot's hooks still run, and the API sends only
transitions after it: a machine whose agent said "idle" then must still go to sleep (it once
stayed up for good), after a create and after every resume; one that said "busy" stays up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from core.contracts.agent import AgentReport
from core.contracts.machine import ActionInput
from core.contracts.serverless import ServerlessInput, WakeForRequestInput
from core.contracts.states import MachineState
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import MachineHandle, fake_worker, signals_processed, start_machine
from tests.workflows.test_idleness import GPU_BUSY, IDLE, POLICY, state_after, until
from workflows.machine import MachineWorkflow

S = MachineState


def reports_during_install(
    cloud: FakeCloud, env: WorkflowEnvironment, machine: list[MachineHandle], report: dict[str, Any]
) -> None:
    async def agent_reports_at_once() -> None:
        at = await env.get_current_time()
        await machine[0].signal(
            MachineWorkflow.agent_report, AgentReport(online=True, at=at, **report)
        )
        await signals_processed(machine[0])

    cloud.during_install = agent_reports_at_once


async def test_an_agent_idle_from_its_install_on_lets_the_machine_sleep(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    machine: list[MachineHandle] = []
    reports_during_install(cloud, ts_env, machine, IDLE)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        machine.append(await start_machine(ts_env.client, task_queue))
        handle = machine[0]
        up = await until(handle, S.RUNNING)
        assert up.hibernation.idle_since == up.state_since
        # Grace (2 min) and 3 idle minutes, with no report after the install's.
        asleep = await state_after(ts_env, handle, timedelta(minutes=6))
        assert asleep.state is S.HIBERNATED

        # Woken, and in serverless mode: each resume's install reports idle again, and the
        # machine pauses again without another word from its agent.
        await handle.execute_update(
            MachineWorkflow.serverless_mode, ServerlessInput(enabled=True, idle_timeout_seconds=300)
        )
        for _ in range(2):
            woke = await handle.execute_update(
                MachineWorkflow.wake_for_request, WakeForRequestInput()
            )
            assert woke.state is S.RUNNING
            paused = await state_after(ts_env, handle, timedelta(minutes=8))
            assert paused.state is S.PAUSED
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_an_agent_busy_from_its_install_on_keeps_the_machine_up(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    machine: list[MachineHandle] = []
    reports_during_install(cloud, ts_env, machine, GPU_BUSY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        machine.append(await start_machine(ts_env.client, task_queue))
        handle = machine[0]
        up = await until(handle, S.RUNNING)
        assert up.hibernation.idle_since is None
        later = await state_after(ts_env, handle, timedelta(minutes=30))
        assert later.state is S.RUNNING and cloud.snapshots == {}
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
