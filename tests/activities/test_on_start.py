"""The on-start activity on a real machine of the local cloud, over SSH with Dumont's key: the
command starts detached with the service's env from /workspace, once per boot however often the
activity is retried, its output in ~/.dumont/on-start.log; one that fails at once says why."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.provider import ProviderActivities
from activities.service import ServiceActivities
from core.contracts import instance_label
from core.contracts.activities import DestroyInstancesInput, ProvisionInput, WaitReadyInput
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.service import RunOnStartInput
from core.ssh import SshIdentity
from tests.fixtures.sim import SimHandle

SPEC = MachineSpec(gpu_name="RTX 4090", image="ubuntu:22.04", disk_gb=20)
# Appends to a file in the working directory, then keeps running like a service does.
SERVICE = 'echo "$MODEL from $(pwd)" >> started.txt; echo serving; exec sleep 600'


@pytest.fixture
async def machine(
    cloud: SimHandle, provider_activities: ProviderActivities
) -> AsyncIterator[tuple[InstanceInfo, Path]]:
    """A running machine of this test's own, and its home directory on disk."""
    machine_id = f"m{uuid.uuid4().hex[:8]}"
    env = ActivityEnvironment()
    info = await env.run(
        provider_activities.provision_instance,
        ProvisionInput(machine_id=machine_id, spec=SPEC, label=instance_label(machine_id, 1)),
    )
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    ready = await env.run(
        provider_activities.wait_until_ready, WaitReadyInput(instance=info, deadline=deadline)
    )
    assert ready.ready, ready.detail
    (row,) = [i for i in await cloud.admin.instances() if str(i["id"]) == info.instance_id]
    try:
        yield ready.instance, Path(row["machine_dir"])
    finally:
        await env.run(
            provider_activities.destroy_instances,
            DestroyInstancesInput(provider="vast", machine_id=machine_id),
        )


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def lines(path: Path, count: int, within: float = 30.0) -> list[str]:
    """The file's lines once it has `count` of them (the command runs in the background)."""
    async with asyncio.timeout(within):
        while True:
            found = await asyncio.to_thread(_lines, path)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


async def test_the_on_start_starts_detached_once_per_boot_with_the_services_env(
    machine: tuple[InstanceInfo, Path], identity: SshIdentity
) -> None:
    instance, root = machine
    run = ServiceActivities(identity).run_on_start
    first = RunOnStartInput(
        machine_id="m1", instance=instance, command=SERVICE, env={"MODEL": "llama"}, boot_id="b1"
    )
    env = ActivityEnvironment()
    # Still running after the SSH session ended: started, not waited for.
    result = await env.run(run, first)
    assert (result.started, result.exit_status, result.detail) == (True, None, None)
    started = root / "workspace" / "started.txt"
    assert await lines(started, 1) == ["llama from /workspace"]
    # A retry of the same boot's activity finds it started: no second start.
    assert (await env.run(run, first)).started
    log = root / "root" / ".dumont" / "on-start.log"
    assert log.read_text().count("--- on-start, boot b1,") == 1
    # The next boot starts it again.
    assert (await env.run(run, replace(first, boot_id="b2"))).started
    assert await lines(started, 2) == ["llama from /workspace"] * 2
    assert log.read_text().count("serving") >= 1


async def test_an_on_start_that_fails_at_once_says_why(
    machine: tuple[InstanceInfo, Path], identity: SshIdentity
) -> None:
    instance, _ = machine
    result = await ActivityEnvironment().run(
        ServiceActivities(identity).run_on_start,
        RunOnStartInput(
            machine_id="m1",
            instance=instance,
            command='echo "serve.py: no such file" >&2; exit 3',
            boot_id="b1",
            settle_seconds=60,  # it ends long before; what is waited for is its end
        ),
    )
    assert (result.started, result.exit_status) == (False, 3)
    assert result.detail == "exited with status 3 at once: serve.py: no such file"
