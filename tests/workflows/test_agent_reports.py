"""The machine workflow's side of the agent: installs after every boot, a failed install that
leaves the machine running with the reason, and `agent_report` signals that are idempotent and
ignore stale reports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from core.contracts.agent import AgentReport
from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import MachineHandle, fake_worker, signals_processed, start_machine
from workflows.machine import MachineWorkflow

S = MachineState
POLICY = LifecyclePolicy(
    boot_poll_seconds=1,
    heartbeat_timeout_seconds=2,
    agent_interval_seconds=30,
    agent_reinstall_seconds=300,
)
T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


async def running(handle: MachineHandle) -> MachineSnapshot:
    for _ in range(500):
        snapshot = await handle.query(MachineWorkflow.state)
        if snapshot.state is S.RUNNING and not snapshot.outbox:  # and its events written
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError(f"machine is {snapshot.state}, never running")


async def report(handle: MachineHandle, report: AgentReport) -> MachineSnapshot:
    await handle.signal(MachineWorkflow.agent_report, report)
    await signals_processed(handle)
    return await handle.query(MachineWorkflow.state)


async def test_failed_install_leaves_the_machine_running_and_says_why(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY, agent_install_error="dumont-agent: no python3 on the machine")
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        snapshot = await running(handle)
        assert snapshot.reason == "agent not installed: dumont-agent: no python3 on the machine"
        assert snapshot.agent.install_error == "dumont-agent: no python3 on the machine"
        assert snapshot.agent.installed_at is None
        # Tried again later, not in a loop.
        assert snapshot.agent.reinstall_at is not None and snapshot.state_since is not None
        assert snapshot.agent.reinstall_at - snapshot.state_since >= timedelta(seconds=299)
        failed = [e for e in cloud.events if e.event_type == "agent_install_failed"]
        assert [(e.state, e.reason) for e in failed] == [(S.STARTING, snapshot.reason)]
        assert cloud.events[-1].event_type == "running"
        assert cloud.events[-1].reason == snapshot.reason

        # The user's actions work as ever: a restart boots and tries the agent again.
        await handle.execute_update(MachineWorkflow.restart, ActionInput())
        assert len([c for c in cloud.calls if c.startswith("install")]) == 2
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()


async def test_reports_are_kept_in_order_and_stale_ones_ignored(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        first = await running(handle)
        assert first.agent.online is None  # installed, not heard from yet
        assert first.agent.report_due_by is not None

        busy = AgentReport(
            online=True,
            at=T,
            gpu_busy=True,
            gpu_utilization=88.0,
            active_users=1,
            last_input_at=T - timedelta(seconds=5),
        )
        snapshot = await report(handle, busy)
        agent = snapshot.agent
        assert (agent.online, agent.gpu_busy, agent.gpu_utilization, agent.active_users) == (
            True,
            True,
            88.0,
            1,
        )
        assert (agent.last_report_at, agent.last_input_at) == (T, T - timedelta(seconds=5))
        assert agent.report_due_by is None  # it reported: no longer expected

        # Older than the last one applied: ignored, however it differs.
        stale = AgentReport(online=False, at=T - timedelta(seconds=1))
        assert (await report(handle, stale)).agent == agent
        # The same report twice: the second changes nothing.
        assert (await report(handle, busy)).agent == agent

        idle = AgentReport(online=True, at=T + timedelta(seconds=30), gpu_busy=False)
        assert (await report(handle, idle)).agent.gpu_busy is False
        assert [c for c in cloud.calls if c.startswith("install")] == ["install i1"]

        # Offline while stopped: recorded, but no agent is expected there; no re-install.
        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        gone = await report(handle, AgentReport(online=False, at=T + timedelta(minutes=2)))
        assert (gone.agent.online, gone.agent.reinstall_at) == (False, None)
        assert [c for c in cloud.calls if c.startswith("install")] == ["install i1"]
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()


async def test_an_agent_silent_after_a_start_is_found_offline_and_reinstalled(
    ts_env: WorkflowEnvironment,
) -> None:
    """The first report is due three intervals after every install, a start's included: a
    machine that was quiet when it was started must still wake for that deadline (before the
    outbox patch it slept through it until some other message came)."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await running(handle)
        at = await ts_env.get_current_time()
        await report(handle, AgentReport(online=True, at=at, gpu_busy=True, busy=True))
        # Long enough for every deadline of the first boot to pass: nothing is due now.
        await ts_env.sleep(timedelta(minutes=5))
        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        started = await handle.execute_update(MachineWorkflow.start, ActionInput())
        assert started.state is S.RUNNING
        # No report ever comes from the started machine's agent.
        await ts_env.sleep(timedelta(minutes=3))
        snapshot = await handle.query(MachineWorkflow.state)
        assert snapshot.agent.reinstalls == 1
        assert [c for c in cloud.calls if c.startswith("install")] == ["install i1"] * 3
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_a_report_that_arrives_while_the_agent_is_installed_counts(
    ts_env: WorkflowEnvironment,
) -> None:
    """An agent that starts fast reports before its install has returned. The API tells the
    workflow only of transitions, so that first report is the only one it hears: it must not be
    wiped by the install's end, or the agent is taken as offline and re-installed for nothing."""
    cloud = FakeCloud(POLICY)
    machine: list[MachineHandle] = []

    async def agent_reports_at_once() -> None:
        at = await ts_env.get_current_time()
        await machine[0].signal(MachineWorkflow.agent_report, AgentReport(online=True, at=at))
        await signals_processed(machine[0])

    cloud.during_install = agent_reports_at_once
    async with fake_worker(ts_env.client, cloud) as task_queue:
        machine.append(await start_machine(ts_env.client, task_queue))
        handle = machine[0]
        up = await running(handle)
        assert (up.agent.online, up.agent.report_due_by) == (True, None)
        # Far past the first-report deadline (three intervals) and the re-install pause.
        await ts_env.sleep(timedelta(minutes=10))
        later = await handle.query(MachineWorkflow.state)
        assert (later.agent.online, later.agent.reinstalls) == (True, 0)
        assert [c for c in cloud.calls if c.startswith("install")] == ["install i1"]
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
