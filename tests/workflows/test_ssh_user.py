"""A machine on a provider whose instances refuse root: the workflow carries the instance's
`ssh_user` from the provider to every SSH step it asks for (the pre-hibernate hook, the
snapshot, the wake's restore)."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from core.contracts.hibernation import ConfigureInput, HibernateInput, WakeInput
from core.contracts.machine import ActionInput
from core.contracts.states import MachineState
from tests.workflows.fakes import FakeCloud
from tests.workflows.helpers import fake_worker, start_machine
from tests.workflows.test_idleness import POLICY, until
from workflows.machine import MachineWorkflow

S = MachineState


async def test_hibernate_and_wake_log_in_as_the_instances_user(ts_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(POLICY, ssh_user="dumont")
    async with fake_worker(ts_env.client, cloud) as task_queue:
        handle = await start_machine(ts_env.client, task_queue)
        running = await until(handle, S.RUNNING)
        assert running.instance is not None and running.instance.ssh_user == "dumont"
        await handle.execute_update(
            MachineWorkflow.configure, ConfigureInput(pre_hibernate_command="sync")
        )
        done = await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
        assert done.state is S.HIBERNATED
        woke = await handle.execute_update(MachineWorkflow.wake, WakeInput())
        assert woke.state is S.RUNNING
        await handle.execute_update(MachineWorkflow.destroy, ActionInput())
    assert cloud.ssh_logins == [("hook", "dumont"), ("snapshot", "dumont"), ("restore", "dumont")]
