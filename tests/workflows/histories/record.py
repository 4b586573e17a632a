"""Record the histories the replay test replays: every machine-workflow scenario, driven against
a worker with fake activities on real Temporal servers, saved as Temporal's own history JSON
(`temporal workflow show --output json` reads and writes the same).

Run it only to ADD the history of a new behaviour (tagged with the patch that brought it);
never re-record an existing one after changing workflow code, since the point of a recorded
history is that it was made by the code that ran before the change:

    .venv/bin/python -m tests.workflows.histories.record --tag event-outbox machine_lifecycle
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.testing import WorkflowEnvironment

from core import search_attributes
from core.contracts.agent import AgentReport
from core.contracts.hibernation import (
    ConfigureInput,
    HibernateInput,
    RestoreInput,
    SnapshotInput,
    WakeInput,
)
from core.contracts.machine import ActionInput, LifecyclePolicy, SshKeysChanged
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from tests.conftest import binary
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import SPEC, fake_worker, signals_processed, start_machine
from tests.workflows.histories import (
    failover_scenarios,
    other_scenarios,
    pause_scenarios,
    serverless_scenarios,
)
from workflows.machine import MachineWorkflow

HERE = Path(__file__).parent
S = MachineState
POLICY = LifecyclePolicy(
    boot_poll_seconds=1,
    heartbeat_timeout_seconds=2,
    snapshot_attempts=2,
    snapshot_retry_seconds=1,
    wake_offer_attempts=2,
    wake_offer_retry_seconds=1,
)
IDLE = {"gpu_busy": False, "busy": False, "gpu_utilization": 1.0}
BUSY = {"gpu_busy": True, "busy": True, "gpu_utilization": 85.0}

Handle = WorkflowHandle[MachineWorkflow, Any]
Scenario = Callable[[WorkflowEnvironment], Awaitable[list[tuple[str, str]]]]


async def _until(handle: Handle, state: MachineState) -> MachineSnapshot:
    for _ in range(600):
        snapshot = await handle.query(MachineWorkflow.state)
        if snapshot.state is state:
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError(f"machine is {snapshot.state}, never {state}")


async def _tell(handle: Handle, env: WorkflowEnvironment, **fields: Any) -> None:
    at = await env.get_current_time()
    fields.setdefault("online", True)
    await handle.signal(MachineWorkflow.agent_report, AgentReport(at=at, **fields))
    await signals_processed(handle)


async def _after(env: WorkflowEnvironment, handle: Handle, skipped: timedelta) -> MachineSnapshot:
    await env.sleep(skipped)
    return await handle.query(MachineWorkflow.state)


async def _runs(client: Client, handle: Handle) -> list[tuple[str, str]]:
    """Every run of the workflow (continue-as-new makes several), oldest first, as JSON."""
    runs = [wf.run_id async for wf in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    found = []
    for run_id in reversed(runs):
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        found.append((run_id, history.to_json()))
    return found


async def _one(handle: Handle) -> list[tuple[str, str]]:
    await handle.result()
    history = await handle.fetch_history()
    return [(handle.id, history.to_json())]


async def lifecycle(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """create → running → stop → start → restart → keys changed → destroy."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.stop, ActionInput(reason="night"))
        await handle.execute_update(MachineWorkflow.start, ActionInput())
        await handle.execute_update(MachineWorkflow.restart, ActionInput())
        await handle.signal(
            MachineWorkflow.ssh_keys_changed, SshKeysChanged(fingerprint="SHA256:abc")
        )
        await signals_processed(handle)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput(reason="done"))
        return await _one(handle)


async def hibernation(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """idle → busy → idle → hibernated → deleted → wake → running → destroy."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        (instance,) = cloud.live()
        instance.workspace = {"train.py": "print('hi')"}
        await _tell(handle, env, **IDLE)
        assert (await _after(env, handle, timedelta(minutes=4))).state is S.IDLE
        await _tell(handle, env, **BUSY)
        await _tell(handle, env, **IDLE)
        assert (await _after(env, handle, timedelta(minutes=4))).state is S.HIBERNATED
        assert (await _after(env, handle, timedelta(minutes=31))).state is S.DELETED
        await handle.execute_update(MachineWorkflow.wake, WakeInput())
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def manual_hibernate_and_wake(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """configure with a hook, snapshot, restore, hibernate, wake in a region, destroy."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        await handle.execute_update(
            MachineWorkflow.configure,
            ConfigureInput(pre_hibernate_command="python save.py", pause_after_minutes=10),
        )
        await handle.execute_update(MachineWorkflow.snapshot, SnapshotInput(reason="before"))
        await handle.execute_update(MachineWorkflow.restore, RestoreInput(reason="undo"))
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput(reason="night"))
        await handle.execute_update(
            MachineWorkflow.wake, WakeInput(region="NA", max_price=2.0, reason="morning")
        )
        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(clear_pre_hibernate_command=True)
        )
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def failed_install(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """The agent install fails: running with the reason, re-installed later, then destroy."""
    cloud = FakeCloud(POLICY, agent_install_error="dumont-agent: no python3 on the machine")
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        await env.sleep(timedelta(minutes=6))
        cloud.agent_install_error = None
        await env.sleep(timedelta(minutes=6))
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def agent_offline(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """The agent reports, goes silent (offline): re-installed; never idle meanwhile."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        await _tell(handle, env, **BUSY)
        await _tell(handle, env, online=False)
        await env.sleep(timedelta(minutes=2))
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def agent_never_reports(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """No first report after the install: offline, re-installed at its time."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        await env.sleep(timedelta(minutes=7))
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def report_during_install(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """The agent reports before its install returns (both installs: after create and the
    re-install once it went offline); nothing else is heard for minutes; then destroy."""
    cloud = FakeCloud(POLICY)
    machine: list[Handle] = []

    async def agent_reports_at_once() -> None:
        await _tell(machine[0], env)

    cloud.during_install = agent_reports_at_once
    async with fake_worker(env.client, cloud) as task_queue:
        machine.append(await start_machine(env.client, task_queue))
        handle = machine[0]
        await _until(handle, S.RUNNING)
        await env.sleep(timedelta(minutes=2))
        await _tell(handle, env, online=False)
        await env.sleep(timedelta(minutes=7))
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def boot_retry(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """The first instance fails to start, the second is slow: running on attempt 2."""
    cloud = FakeCloud(POLICY, fail_attempts=1, boot_seconds=lambda attempt: 20)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await env.sleep(timedelta(minutes=1))
        await _until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def no_offer(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """No offer matches: error; a start fails the same way; destroy."""
    cloud = FakeCloud(POLICY, offers=())
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.ERROR)
        try:
            await handle.execute_update(MachineWorkflow.start, ActionInput())
        except WorkflowUpdateFailedError:
            pass
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def destroy_during_boot(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """A destroy while the create's answer never comes: the boot is cancelled."""
    cloud = FakeCloud(POLICY, hang_after_create=True)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await cloud.created.wait()
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def snapshot_failure(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """The store is down at the idle deadline: nothing destroyed, retried 10 min later."""
    cloud = FakeCloud(POLICY, snapshot_error="object store: connection refused")
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        await _tell(handle, env, **IDLE)
        assert (await _after(env, handle, timedelta(minutes=6))).state is S.IDLE
        cloud.snapshot_error = None
        assert (await _after(env, handle, timedelta(minutes=11))).state is S.HIBERNATED
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def hook_failure(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """A failing pre-hibernate hook aborts, then (configured to continue) goes on."""
    cloud = FakeCloud(POLICY, hook_exit_status=3)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(pre_hibernate_command="python save.py")
        )
        try:
            await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        except WorkflowUpdateFailedError:
            pass
        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(pre_hibernate_on_failure="continue")
        )
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def wake_no_offer(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """A wake that finds no offer in the region nor anywhere: hibernated, with why."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        cloud.offers = []
        try:
            await handle.execute_update(MachineWorkflow.wake, WakeInput(region="EU"))
        except WorkflowUpdateFailedError:
            pass
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


async def database_outage(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """The database goes out while the machine runs: a destroy still reaches the provider, the
    records wait in the outbox and land once it is back (patch event-outbox)."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        await _until(handle, S.RUNNING)
        cloud.database_out = True
        await handle.start_update(
            MachineWorkflow.destroy, ActionInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        await _until(handle, S.DESTROYED)  # the provider is done; the records are not
        await env.sleep(timedelta(seconds=20))  # a few failed writes, retried
        cloud.database_out = False
        return await _one(handle)


async def continue_as_new(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """Stop/start until the server suggests continue-as-new; the new run goes on (dev server
    with a lowered threshold)."""
    cloud = FakeCloud(POLICY)
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue)
        first = (await handle.describe()).run_id
        await _until(handle, S.RUNNING)
        while (await handle.describe()).run_id == first:
            await handle.execute_update(MachineWorkflow.stop, ActionInput())
            await handle.execute_update(MachineWorkflow.start, ActionInput())
        await _tell(handle, env, **IDLE)
        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        await handle.result()
        return await _runs(env.client, handle)


async def on_start(env: WorkflowEnvironment) -> list[tuple[str, str]]:
    """A machine with a service: its on-start after create, start and wake; one that fails
    after a restart (running with why); destroy (patch on-start)."""
    cloud = FakeCloud(POLICY)
    spec = replace(
        SPEC, ports=["8000/tcp"], env={"MODEL": "llama"}, on_start="python3 serve.py --port 8000"
    )
    async with fake_worker(env.client, cloud) as task_queue:
        handle = await start_machine(env.client, task_queue, spec)
        await _until(handle, S.RUNNING)
        await handle.execute_update(MachineWorkflow.stop, ActionInput())
        await handle.execute_update(MachineWorkflow.start, ActionInput())
        cloud.on_start_error = "python3: can't open file 'serve.py'"
        await handle.execute_update(MachineWorkflow.restart, ActionInput())
        cloud.on_start_error = None
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        await handle.execute_update(MachineWorkflow.wake, WakeInput())
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
        return await _one(handle)


# Time-skipping server unless marked "dev" (continue-as-new needs the dev server's threshold).
SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "machine_lifecycle": (lifecycle, "ts"),
    "machine_hibernation": (hibernation, "ts"),
    "machine_manual_hibernate_and_wake": (manual_hibernate_and_wake, "ts"),
    "machine_failed_install": (failed_install, "ts"),
    "machine_agent_offline": (agent_offline, "ts"),
    "machine_agent_never_reports": (agent_never_reports, "ts"),
    "machine_report_during_install": (report_during_install, "ts"),
    "machine_boot_retry": (boot_retry, "ts"),
    "machine_no_offer": (no_offer, "ts"),
    "machine_destroy_during_boot": (destroy_during_boot, "dev"),
    "machine_snapshot_failure": (snapshot_failure, "ts"),
    "machine_hook_failure": (hook_failure, "ts"),
    "machine_wake_no_offer": (wake_no_offer, "ts"),
    "machine_continue_as_new": (continue_as_new, "dev"),
    "machine_database_outage": (database_outage, "ts"),
    "machine_on_start": (on_start, "ts"),
    "fleet_monitor": (other_scenarios.fleet_monitor, "ts"),
    "schedule_trigger": (other_scenarios.schedule_trigger, "ts"),
    "machine_pause_resume": (functools.partial(pause_scenarios.pause_resume, policy=POLICY), "ts"),
    "machine_paused_too_long": (
        functools.partial(pause_scenarios.paused_too_long, policy=POLICY),
        "ts",
    ),
    "machine_serverless": (
        functools.partial(serverless_scenarios.serverless, policy=POLICY),
        "ts",
    ),
    "machine_idle_after_boot": (
        functools.partial(serverless_scenarios.idle_after_boot, policy=POLICY),
        "ts",
    ),
    "machine_failover": (functools.partial(failover_scenarios.failover, policy=POLICY), "dev"),
    "machine_standby_hibernate": (
        functools.partial(failover_scenarios.standby_hibernate, policy=POLICY),
        "dev",
    ),
    "machine_idle_migrate": (
        functools.partial(failover_scenarios.idle_migrate, policy=POLICY),
        "ts",
    ),
}


async def _time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server")
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in search_attributes.ALL
            },
        )
    )
    return env


async def _dev() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        search_attributes=list(search_attributes.ALL),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=120",
        ],
    )


def _save(name: str, runs: list[tuple[str, str]], tag: str) -> None:
    for number, (_run_id, history) in enumerate(runs, start=1):
        suffix = "" if len(runs) == 1 else f".run{number}"
        path = HERE / f"{name}.{tag}{suffix}.json"
        path.write_text(json.dumps(json.loads(history), indent=1) + "\n")
        print(f"wrote {path.relative_to(HERE.parent.parent.parent)}")


async def main(names: list[str], tag: str) -> None:
    for name in names:
        scenario, server = SCENARIOS[name]
        env = await (_dev() if server == "dev" else _time_skipping())
        try:
            _save(name, await scenario(env), tag)
        finally:
            await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Both required: re-recording every history, or an untagged one, would overwrite what the
    # code before a change made, which is what the replay test needs.
    parser.add_argument("names", nargs="+", help=f"scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--tag", required=True, help="the patch whose behaviour is recorded: name.TAG.json"
    )
    args = parser.parse_args()
    asyncio.run(main(args.names, args.tag))
