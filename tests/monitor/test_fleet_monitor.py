"""The fleet monitor: rules evaluated every interval at the monitor's time (on the
time-skipping server); a silent agent's machine hears it and re-installs the agent, at a
bounded rate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.alerts import AlertActivities
from activities.monitor import MonitorActivities
from core.alerts.store import owner_rules
from core.contracts.agent import AgentReport
from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.monitor import MonitorInput
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from core.db import session_scope
from core.models import Alert, Event, Machine, MetricSample, User
from tests.alerts.helpers import make_machine
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import MachineHandle, start_machine
from workflows.client import MachineClient
from workflows.machine import MachineWorkflow
from workflows.monitor import FleetMonitorWorkflow

EVERY = timedelta(seconds=30)
T = TypeVar("T")


@asynccontextmanager
async def monitor_worker(
    client: Client, engine: Engine, cloud: FakeCloud | None = None
) -> AsyncIterator[str]:
    """The monitor's real activities (and a fake cloud's machines) on a fresh task queue."""
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    alerts, monitor = AlertActivities(engine), MonitorActivities(engine, MachineClient(client))
    with ThreadPoolExecutor(8) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[FleetMonitorWorkflow, MachineWorkflow],
            activities=[
                monitor.sweep_silent_agents,
                alerts.evaluate_alerts,
                alerts.deliver_webhooks,
                monitor.prune_metrics,
                *(cloud.activities() if cloud else []),
            ],
            activity_executor=executor,
        ):
            yield task_queue


async def start_monitor(
    client: Client, task_queue: str, every: timedelta = EVERY
) -> WorkflowHandle[FleetMonitorWorkflow, None]:
    return await client.start_workflow(
        FleetMonitorWorkflow.run,
        MonitorInput(interval_seconds=int(every.total_seconds())),
        id=f"fleet-monitor-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
    )


async def end(monitor: WorkflowHandle[FleetMonitorWorkflow, None]) -> None:
    """Cancel the monitor and wait until it is gone, so that no activity of it outlives the
    worker (the time-skipping server's clock would stay locked for the next test)."""
    await monitor.cancel()
    with pytest.raises(WorkflowFailureError):
        await monitor.result()


def alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as session:
        return list(session.exec(select(Alert)))


async def eventually(check: Callable[[], T | None], what: str) -> T:
    """The round due at the time skipped to may still be finishing: wait for it (real time)."""
    for _ in range(200):
        result = check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


def gpu_samples(engine: Engine, machine_id: str, start: datetime) -> None:
    """95 % for 7 minutes from start, then 10 % for 3 minutes; a sample every 30 s."""
    with session_scope(engine) as session:
        for i in range(21):
            at = start + i * EVERY
            busy = at - start < timedelta(minutes=7)
            session.add(
                MetricSample(
                    machine_id=machine_id, timestamp=at, gpu_utilization=95 if busy else 10
                )
            )


async def test_monitor_evaluates_rules_on_schedule(
    ts_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    start = await ts_env.get_current_time()
    machine = make_machine(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        for rule in owner_rules(session, machine.owner_id):
            rule.enabled = rule.kind == "gpu_utilization"  # reports arrive only as samples here
    gpu_samples(sqlite_engine, machine.id, start)

    async with monitor_worker(ts_env.client, sqlite_engine) as task_queue:
        handle = await start_monitor(ts_env.client, task_queue)
        await ts_env.sleep(timedelta(minutes=4))
        assert (await handle.query(FleetMonitorWorkflow.state)).ticks >= 8
        assert alerts(sqlite_engine) == []  # 95 % for 4 minutes: not yet

        await ts_env.sleep(timedelta(minutes=2))
        (fired,) = await eventually(lambda: alerts(sqlite_engine), "the GPU alert fired")
        assert (fired.kind, fired.state, fired.value) == ("gpu_utilization", "firing", 95)
        # Fired by the first round that saw five minutes above the threshold.
        assert start + timedelta(minutes=5) <= fired.fired_at < start + timedelta(minutes=6)

        await ts_env.sleep(timedelta(minutes=3))
        (resolved,) = await eventually(
            lambda: [a for a in alerts(sqlite_engine) if a.state == "resolved"], "resolved"
        )
        assert resolved.id == fired.id
        assert resolved.resolved_at is not None
        assert start + timedelta(minutes=7) <= resolved.resolved_at < start + timedelta(minutes=8)
        await end(handle)

    with Session(sqlite_engine) as session:
        events = session.exec(select(Event.event_type).where(Event.machine_id == machine.id)).all()
    assert list(events) == ["alert_firing", "alert_resolved"]


async def test_silent_agent_is_reinstalled_at_a_bounded_rate(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    """On the dev server, in seconds: one-second reports, re-installs at least 3 s apart."""
    gap = timedelta(seconds=3)
    cloud = FakeCloud(LifecyclePolicy(agent_interval_seconds=1, agent_reinstall_seconds=3))
    client = dev_env.client
    async with monitor_worker(client, sqlite_engine, cloud) as task_queue:
        handle = await start_machine(client, task_queue)
        running = await eventually_state(handle, lambda s: s.state is MachineState.RUNNING)
        assert running.instance is not None
        # The agent reported once (the API told the workflow), long ago as the database says.
        now = datetime.now(UTC)
        await handle.signal(MachineWorkflow.agent_report, AgentReport(online=True, at=now))
        add_machine_row(sqlite_engine, handle.id.removeprefix("machine-"), now)

        monitor = await start_monitor(client, task_queue, every=timedelta(seconds=1))
        snapshot = await eventually_state(handle, lambda s: s.agent.reinstalls == 1)
        assert snapshot.agent.online is not True
        (offline,) = await eventually(lambda: alerts(sqlite_engine), "the offline alert fired")
        assert (offline.kind, offline.state) == ("machine_offline", "firing")
        assert offline.reason == "no agent report for 5 min"

        # The re-installed agent never reports either: it is tried again, but not before the
        # bound has passed since the last try.
        await eventually_state(handle, lambda s: s.agent.reinstalls == 3)
        await end(monitor)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()

    tries = cloud.install_times[1:]
    assert len(tries) == 3
    assert all(later - earlier >= gap for earlier, later in zip(tries, tries[1:], strict=False))
    reinstalled = [e for e in cloud.events if e.event_type == "agent_installed"]
    assert [(e.reason or "").split(": agent running")[0] for e in reinstalled] == [
        "installed after create",
        "re-installed: agent went offline",
        "re-installed: agent never reported after install",
        "re-installed: agent never reported after install",
    ]


def add_machine_row(engine: Engine, machine_id: str, now: datetime) -> None:
    """The projection of a running machine whose agent last reported 5 minutes ago."""
    with session_scope(engine) as session:
        session.add(User(id="u_test", name=f"test-{uuid.uuid4().hex[:6]}"))
        session.flush()
        session.add(
            Machine(
                id=machine_id,
                owner_id="u_test",
                gpu_name="RTX 4090",
                image="pytorch/pytorch:latest",
                disk_gb=40,
                status="running",
                updated_at=now - timedelta(minutes=10),
                last_report_at=now - timedelta(minutes=5),
                agent_online=True,
            )
        )


async def eventually_state(
    handle: MachineHandle, check: Callable[[MachineSnapshot], bool]
) -> MachineSnapshot:
    for _ in range(400):
        snapshot = await handle.query(MachineWorkflow.state)
        if check(snapshot):
            return snapshot
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached; last {snapshot.agent}")
