"""Serverless mode in the machine workflow (fake activities): an idle machine is paused after
the mode's timeout instead of hibernated; requests reported by the gateway keep it up, open
ones only while their lease lasts; a held request resumes a paused machine (one that is pausing
once the pause is done) and is told where the machine now runs."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from core.contracts.machine import ActionInput
from core.contracts.serverless import (
    ColdStartGaveUp,
    ServerlessInput,
    TrafficReport,
    WakeForRequestInput,
)
from core.contracts.states import InstanceStatus, MachineState
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import MachineHandle, fake_worker, signals_processed, start_machine
from tests.workflows.test_idleness import IDLE, POLICY, state_after, tell, until
from workflows.machine import MachineWorkflow

S = MachineState
FIVE_MINUTES = 300


async def serverless(handle: MachineHandle, seconds: int = FIVE_MINUTES) -> None:
    await handle.execute_update(
        MachineWorkflow.serverless_mode,
        ServerlessInput(enabled=True, idle_timeout_seconds=seconds),
    )


async def traffic(
    handle: MachineHandle,
    env: WorkflowEnvironment,
    *,
    open_requests: int = 0,
    gateway: str = "gw-1",
    lease_seconds: int = 90,
) -> datetime:
    at = await env.get_current_time()
    report = TrafficReport(
        gateway_id=gateway,
        at=at,
        last_request_at=at,
        open_requests=open_requests,
        requests=1,
        lease_seconds=lease_seconds,
    )
    await handle.signal(MachineWorkflow.serverless_traffic, report)
    await signals_processed(handle)
    return at


async def test_an_idle_serverless_machine_is_paused_not_hibernated(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await serverless(handle)
        await tell(handle, ts_env, **IDLE)
        # Two minutes of setup grace, then five idle ones.
        assert (await state_after(ts_env, handle, timedelta(minutes=6))).state is S.IDLE
        paused = await state_after(ts_env, handle, timedelta(minutes=2))
        assert paused.state is S.PAUSED
        (instance,) = cloud.live()  # stopped, its disk kept: not destroyed
        assert instance.status is InstanceStatus.STOPPED
        kinds = [e.event_type for e in cloud.events]
        assert kinds.index("serverless_enabled") < kinds.index("pausing") < kinds.index("paused")
        assert "hibernating" not in kinds
        assert "serverless: no requests for 5 min" in (paused.reason or "")
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_requests_keep_the_machine_up_and_it_pauses_after_the_last(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await serverless(handle)
        await tell(handle, ts_env, **IDLE)  # the GPU idles between requests
        for _ in range(6):  # a request every four minutes for 24 minutes
            await traffic(handle, ts_env)
            assert (await state_after(ts_env, handle, timedelta(minutes=4))).state.is_up()
        last = await traffic(handle, ts_env)
        assert (await state_after(ts_env, handle, timedelta(minutes=4))).state is S.IDLE
        paused = await state_after(ts_env, handle, timedelta(minutes=2))
        assert paused.state is S.PAUSED
        assert paused.state_since is not None
        assert paused.state_since - last >= timedelta(minutes=5)
        assert paused.serverless.requests == 7
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_an_open_stream_holds_it_up_only_while_its_gateway_keeps_reporting(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await serverless(handle)
        await tell(handle, ts_env, **IDLE)
        # A stream open for 20 minutes, its gateway repeating the report every minute; another
        # gateway with nothing open says so meanwhile, which must not end the first one's lease.
        for minute in range(20):
            await traffic(handle, ts_env, open_requests=1)
            if minute == 10:
                at = await ts_env.get_current_time()
                quiet = TrafficReport(gateway_id="gw-2", at=at, open_requests=0)
                await handle.signal(MachineWorkflow.serverless_traffic, quiet)
            await ts_env.sleep(timedelta(minutes=1))
        assert (await handle.query(MachineWorkflow.state)).state is S.RUNNING
        # The gateway dies: its lease (90 s) runs out, then the five idle minutes.
        died = await ts_env.get_current_time()
        still = await state_after(ts_env, handle, timedelta(minutes=5))
        assert still.state.is_up()
        paused = await state_after(ts_env, handle, timedelta(minutes=3))
        assert paused.state is S.PAUSED and paused.state_since is not None
        assert paused.state_since - died >= timedelta(minutes=5)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_a_held_request_resumes_a_paused_machine(dev_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        await serverless(handle)
        warm = await handle.execute_update(MachineWorkflow.wake_for_request, WakeForRequestInput())
        assert warm.state is S.RUNNING and not warm.resumed and warm.instance is not None
        await handle.execute_update(MachineWorkflow.pause, ActionInput())
        cold = await handle.execute_update(MachineWorkflow.wake_for_request, WakeForRequestInput())
        assert cold.state is S.RUNNING and cold.resumed
        assert cold.instance is not None and cold.instance.instance_id == warm.instance.instance_id
        kinds = [e.event_type for e in cloud.events]
        assert kinds.count("resuming") == 1 and kinds.count("resumed") == 1
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_requests_held_while_pausing_resume_it_once_the_pause_is_done(
    dev_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    gate = cloud.snapshot_gate = asyncio.Event()
    gate.set()
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        await serverless(handle)
        gate.clear()
        await handle.start_update(
            MachineWorkflow.pause, ActionInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        await until(handle, S.PAUSING)
        # Two gateways hold requests: one resume serves both.
        waits = [
            asyncio.create_task(
                handle.execute_update(MachineWorkflow.wake_for_request, WakeForRequestInput())
            )
            for _ in range(2)
        ]
        await asyncio.sleep(0.3)
        assert not any(w.done() for w in waits)
        gate.set()
        results = await asyncio.gather(*waits)
        assert all(r.state is S.RUNNING and r.resumed for r in results)
        kinds = [e.event_type for e in cloud.events]
        assert kinds.count("paused") == 1 and kinds.count("resumed") == 1
        assert kinds.index("paused") < kinds.index("resumed")
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_a_stopped_machine_is_not_woken_by_a_request(dev_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(dev_env.client, cloud) as task_queue:
        handle = await start_machine(dev_env.client, task_queue)
        await until(handle, S.RUNNING)
        await serverless(handle)
        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(MachineWorkflow.wake_for_request, WakeForRequestInput())
        assert "stopped" in str(refused.value.cause)
        assert (await until(handle, S.STOPPED)).state is S.STOPPED
        # A gateway that gave up on a cold start leaves an event saying why.
        await handle.signal(
            MachineWorkflow.serverless_gave_up,
            ColdStartGaveUp(gateway_id="gw-1", reason="no answer within 300 s", held=3),
        )
        await signals_processed(handle)
        await until(handle, S.STOPPED)
        last = cloud.events[-1]
        assert last.event_type == "cold_start_failed"
        assert "3 held request(s) answered 503: no answer within 300 s" in (last.reason or "")
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_serverless_off_again_hibernates_as_before(ts_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        await until(handle, S.RUNNING)
        await serverless(handle)
        await handle.execute_update(MachineWorkflow.serverless_mode, ServerlessInput(enabled=False))
        await tell(handle, ts_env, **IDLE)
        later = await state_after(ts_env, handle, timedelta(minutes=6))
        assert later.state is S.HIBERNATED
        assert "serverless_disabled" in [e.event_type for e in cloud.events]
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
