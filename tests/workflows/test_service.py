"""A machine's on-start on the time-skipping server (fake activities): started by Dumont after
every boot, a wake's only once its workspace is restored, with the service's environment; a
start that fails leaves the machine running with why; a machine without one runs none."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from temporalio.testing import WorkflowEnvironment

from core.contracts.hibernation import HibernateInput, WakeInput
from core.contracts.machine import ActionInput, LifecyclePolicy
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import SPEC, MachineHandle, fake_worker, start_machine, written
from workflows.machine import MachineWorkflow
from workflows.machine.kernel import ON_START_PATCH

S = MachineState
POLICY = LifecyclePolicy(boot_poll_seconds=1, heartbeat_timeout_seconds=2)
SERVICE = replace(
    SPEC,
    ports=["8000/tcp"],
    env={"MODEL": "llama", "API_TOKEN": "s3cret"},
    on_start="python3 serve.py --port 8000",
)


async def until(handle: MachineHandle, state: MachineState) -> MachineSnapshot:
    for _ in range(300):
        snapshot = await handle.query(MachineWorkflow.state)
        if snapshot.state is state:
            return await written(handle)
        await asyncio.sleep(0.02)
    raise AssertionError(f"machine is {snapshot.state}, never {state}")


async def patches(handle: MachineHandle) -> list[str]:
    history = await handle.fetch_history()
    return [
        json.loads(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)[
            "id"
        ]
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
        and "patch-data" in event.marker_recorded_event_attributes.details
    ]


async def test_the_on_start_runs_after_every_boot_with_the_services_env(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue, SERVICE)
        await until(handle, S.RUNNING)
        (instance,) = cloud.live()
        instance.workspace = {"serve.py": "..."}
        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        await handle.execute_update(MachineWorkflow.start, ActionInput())
        await handle.execute_update(MachineWorkflow.restart, ActionInput())
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        await handle.execute_update(MachineWorkflow.wake, WakeInput())
        snapshot = await until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())

    assert [(run.instance.instance_id, run.command) for run in cloud.on_starts] == [
        ("i1", SERVICE.on_start),  # create
        ("i1", SERVICE.on_start),  # start
        ("i1", SERVICE.on_start),  # restart
        ("i2", SERVICE.on_start),  # wake, on the new instance
    ]
    assert all(run.env == SERVICE.env for run in cloud.on_starts)
    # A fresh boot id each time: a retry of one start finds it, the next boot starts again.
    assert len({run.boot_id for run in cloud.on_starts}) == 4
    # The wake's on-start comes once the workspace is back, and before the machine runs.
    wake = cloud.calls[cloud.calls.index("provision dumont-" + snapshot.machine_id + "-2") :]
    assert wake.index("restore " + str(snapshot.hibernation.snapshot_id)) < wake.index(
        "on-start i2"
    )
    started = [e for e in cloud.events if e.event_type == "on_start_started"]
    assert [e.reason for e in started] == [
        "on-start started after create",
        "on-start started after start",
        "on-start started after restart",
        "on-start started after wake",
    ]
    assert snapshot.reason is None
    assert ON_START_PATCH in await patches(handle)


async def test_an_on_start_that_fails_leaves_the_machine_running_with_why(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY, on_start_error="serve.py: command not found")
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue, SERVICE)
        snapshot = await until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())

    assert snapshot.reason == (
        "on-start failed: exited with status 127 at once: serve.py: command not found"
    )
    (failed,) = [e for e in cloud.events if e.event_type == "on_start_failed"]
    assert failed.reason == snapshot.reason
    assert cloud.states() == [S.STARTING, S.RUNNING, S.DESTROYING, S.DESTROYED]


async def test_a_machine_without_an_on_start_runs_none_and_records_no_patch(
    ts_env: WorkflowEnvironment,
) -> None:
    cloud = FakeCloud(POLICY)
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue, replace(SERVICE, on_start=None))
        await until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        await handle.execute_update(MachineWorkflow.start, ActionInput())
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())

    assert cloud.on_starts == []
    assert not [e for e in cloud.events if e.event_type.startswith("on_start")]
    assert ON_START_PATCH not in await patches(handle)
