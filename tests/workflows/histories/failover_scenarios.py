"""The recorder's failover scenarios (patch `standby-failover`), on the fake cloud with a
standby (tests/workflows/failover_cloud.py); record.py runs them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.contracts import machine_workflow_id
from core.contracts.agent import AgentReport
from core.contracts.hibernation import HibernateInput, WakeInput
from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.standby import (
    MigrateInput,
    ProviderEvent,
    Side,
    StandbyConfig,
    StandbyConfigInput,
    SyncHealth,
    SyncReport,
)
from core.contracts.states import InstanceStatus, MachineState
from core.contracts.workflow import MachineInput, MachineSnapshot
from tests.workflows.failover_cloud import FailoverCloud
from tests.workflows.helpers import SPEC, fake_worker, signals_processed
from workflows.machine import MachineWorkflow

S = MachineState
Handle = WorkflowHandle[MachineWorkflow, Any]


async def _start(client: Client, task_queue: str, standby: StandbyConfig | None) -> Handle:
    machine_id = f"m{uuid.uuid4().hex[:10]}"
    return await client.start_workflow(
        MachineWorkflow.run,
        MachineInput(machine_id=machine_id, owner_id="u_test", spec=SPEC, standby=standby),
        id=machine_workflow_id(machine_id),
        task_queue=task_queue,
    )


async def _until(handle: Handle, check: Callable[[MachineSnapshot], bool]) -> MachineSnapshot:
    for _ in range(1000):
        snapshot = await handle.query(MachineWorkflow.state)
        if check(snapshot):
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError(f"machine is {snapshot.state}, {snapshot.standby}")


def _linked(s: MachineSnapshot) -> bool:
    return (
        s.state is S.RUNNING
        and s.instance is not None
        and s.standby.linked_instance_id == s.instance.instance_id
    )


async def failover(env: WorkflowEnvironment, *, policy: LifecyclePolicy) -> list[tuple[str, str]]:
    """Standby made and linked; the GPU lost: on standby, a GPU search that finds none, then
    back on a new GPU; migrate to the CPU and back; a preempted standby made again after a
    failing sync; standby disabled, enabled; destroy."""
    cloud = FailoverCloud(policy)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await _start(env.client, task_queue, StandbyConfig(enabled=True))
        state = await _until(handle, _linked)
        assert state.instance is not None
        gpu = state.instance.instance_id
        cloud.instances[gpu].status = InstanceStatus.GONE
        cloud.offers = []
        at = await env.get_current_time()
        await handle.signal(
            MachineWorkflow.provider_event,
            ProviderEvent(instance_id=gpu, status=InstanceStatus.GONE, at=at),
        )
        await _until(handle, lambda s: s.state is S.STANDBY and s.standby.hunts >= 1)
        cloud.offers = ["offer-8", "offer-9"]
        await _until(handle, _linked)
        await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.CPU))
        await handle.execute_update(MachineWorkflow.migrate, MigrateInput(to=Side.GPU))
        state = await _until(handle, _linked)
        assert state.standby.instance is not None
        cloud.instances[state.standby.instance.instance_id].status = InstanceStatus.STOPPED
        at = await env.get_current_time()
        await handle.signal(
            MachineWorkflow.standby_sync,
            SyncReport(health=SyncHealth.FAILING, at=at, error="timed out"),
        )
        await _until(handle, lambda s: _linked(s) and s.standby.attempt == 2)
        await handle.execute_update(
            MachineWorkflow.configure_standby,
            StandbyConfigInput(config=StandbyConfig(enabled=False)),
        )
        await _until(handle, lambda s: s.standby.instance is None)
        await handle.execute_update(
            MachineWorkflow.configure_standby,
            StandbyConfigInput(config=StandbyConfig(enabled=True, sync_interval_seconds=60)),
        )
        await _until(handle, _linked)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()
        history = await handle.fetch_history()
        return [(handle.id, history.to_json())]


async def idle_migrate(
    env: WorkflowEnvironment, *, policy: LifecyclePolicy
) -> list[tuple[str, str]]:
    """Idle past the window with a standby: moved to it, no GPU hunted; a lost instance of a
    machine without a standby is an error (second machine); destroy both."""
    cloud = FailoverCloud(policy)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await _start(env.client, task_queue, StandbyConfig(enabled=True))
        await _until(handle, _linked)
        at = await env.get_current_time()
        await handle.signal(
            MachineWorkflow.agent_report,
            AgentReport(online=True, at=at, gpu_busy=False, busy=False, gpu_utilization=1.0),
        )
        await signals_processed(handle)
        await env.sleep(timedelta(minutes=12))
        await _until(handle, lambda s: s.state is S.STANDBY)
        await env.sleep(timedelta(minutes=5))
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()
        history = await handle.fetch_history()
        return [(handle.id, history.to_json())]


async def standby_hibernate(
    env: WorkflowEnvironment, *, policy: LifecyclePolicy
) -> list[tuple[str, str]]:
    """The GPU lost with no GPU to be had: hibernated from the standby (the standby goes), then
    woken on a GPU (a new standby made); destroy."""
    cloud = FailoverCloud(policy)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await _start(env.client, task_queue, StandbyConfig(enabled=True))
        state = await _until(handle, _linked)
        assert state.instance is not None
        gpu = state.instance.instance_id
        cloud.instances[gpu].status = InstanceStatus.GONE
        cloud.offers = []
        at = await env.get_current_time()
        await handle.signal(
            MachineWorkflow.provider_event,
            ProviderEvent(instance_id=gpu, status=InstanceStatus.GONE, at=at),
        )
        await _until(handle, lambda s: s.state is S.STANDBY)
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        cloud.offers = ["offer-8"]
        await handle.execute_update(MachineWorkflow.wake, WakeInput())
        await _until(handle, _linked)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()
        history = await handle.fetch_history()
        return [(handle.id, history.to_json())]
