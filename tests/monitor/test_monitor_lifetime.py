"""The fleet monitor lives as long as the deployment: every worker start finds the one that
runs, and it continues as new with its deadlines carried over."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy.engine import Engine
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from core.contracts.monitor import FLEET_MONITOR_WORKFLOW_ID
from core.settings import Settings
from tests.monitor.test_fleet_monitor import end, monitor_worker, start_monitor
from worker import ensure_fleet_monitor
from workflows.monitor import FleetMonitorWorkflow


async def test_every_worker_start_finds_the_one_monitor(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    settings = Settings(task_queue=f"tq-{uuid.uuid4().hex[:8]}")
    handle = client.get_workflow_handle(FLEET_MONITOR_WORKFLOW_ID)
    await ensure_fleet_monitor(client, settings)
    first = await handle.describe()
    assert first.status is WorkflowExecutionStatus.RUNNING
    await ensure_fleet_monitor(client, settings)  # a second worker, or a restarted one
    again = await handle.describe()
    assert (again.run_id, again.status) == (first.run_id, WorkflowExecutionStatus.RUNNING)

    # Ended for whatever reason, the next worker start brings it back.
    await handle.terminate(reason="test")
    await ensure_fleet_monitor(client, settings)
    revived = await handle.describe()
    assert revived.status is WorkflowExecutionStatus.RUNNING
    assert revived.run_id != first.run_id
    await handle.terminate(reason="test over")


async def test_monitor_continues_as_new_keeping_its_deadlines(
    dev_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    client = dev_env.client
    async with monitor_worker(client, sqlite_engine) as task_queue:
        monitor = await start_monitor(client, task_queue, every=timedelta(seconds=1))
        first_run = (await monitor.describe()).run_id
        before = await monitor.query(FleetMonitorWorkflow.state)
        while before.ticks == 0:  # its first round sets the deadlines
            await asyncio.sleep(0.05)
            before = await monitor.query(FleetMonitorWorkflow.state)
        for _ in range(600):  # the dev server suggests it after 120 history events
            latest = client.get_workflow_handle(monitor.id)
            if (await latest.describe()).run_id != first_run:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the monitor never continued as new")
        after = await latest.query(FleetMonitorWorkflow.state)
        assert after.ticks > before.ticks
        # The hourly prune is an absolute time: the new run keeps the old run's.
        assert before.next_prune_at is not None
        assert after.next_prune_at == before.next_prune_at
        await end(latest)
