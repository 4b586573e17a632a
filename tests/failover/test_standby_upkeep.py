"""The standby's own life end to end (real sims, SSH, rsync, Temporal): a standby preempted by
Compute Engine is noticed by the fleet reconciler, made again and synced again, with an event; a
standby that cannot be had anywhere (every zone stocked out) never holds the GPU machine back,
and is tried again with backoff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.reconcile import ReconcileActivities
from core.contracts.machine import ActionInput
from core.contracts.monitor import MonitorTick
from core.contracts.states import MachineState
from providers.gcp.catalogue import ZONES
from providers.registry import ProviderRegistry
from tests.failover.stack import Stack, linked, running_stack, until
from tests.fixtures.sim import SimHandle
from tests.workflows.machines import recorded_events
from workflows.client import MachineClient
from workflows.machine import MachineWorkflow

S = MachineState


@pytest.fixture
async def stack(
    tmp_path: Path, dev_env: WorkflowEnvironment, sim: SimHandle, sqlite_engine: Engine
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, dev_env.client, sqlite_engine, sim) as stack:
        yield stack


async def reconcile(stack: Stack) -> None:
    """One pass of the fleet reconciler, as the fleet monitor runs it."""
    registry = ProviderRegistry.from_settings(stack.settings)
    try:
        acts = ReconcileActivities(registry, stack.engine, machines=MachineClient(stack.client))
        await ActivityEnvironment().run(
            acts.reconcile_instances, MonitorTick(now=datetime.now(UTC))
        )
    finally:
        await registry.aclose()


async def test_a_preempted_standby_is_made_again_and_synced_again(stack: Stack) -> None:
    handle = await stack.create()
    up = await until(handle, linked, "running with its standby linked")
    assert up.instance is not None and up.standby.instance is not None
    first = up.standby.instance
    await stack.as_dumont(up.instance, "echo 'epoch 12' > /workspace/progress.txt")
    zone, name = first.instance_id.split("/")
    await stack.sim.gce_admin.preempt(stack.settings.gcp_project or "", zone, name)
    await reconcile(stack)
    again = await until(
        handle,
        lambda s: linked(s) and s.standby.instance is not None and s.standby.attempt == 2,
        "a new standby linked",
    )
    second = again.standby.instance
    assert second is not None and second.instance_id != first.instance_id
    # The agent's next sync fills the new standby; the user's key reaches it.
    for _ in range(100):
        found = await stack.as_user(second, "cat /workspace/progress.txt 2>/dev/null || true")
        if found.strip():
            break
        await asyncio.sleep(0.5)
    assert found.strip() == "epoch 12"
    kinds = [e.event_type for e in recorded_events(stack.engine, handle)]
    assert "standby_lost" in kinds and kinds.count("standby_created") == 2
    names = [str(i["name"]) for i in await stack.sim.gce_admin.instances()]
    assert name not in names  # the preempted one is gone, not left billing its disk
    await handle.execute_update(MachineWorkflow.destroy, ActionInput())


async def test_a_standby_that_cannot_be_had_never_holds_the_gpu_back(stack: Stack) -> None:
    for zone in ZONES:
        await stack.sim.gce_admin.stockout(zone)
    handle = await stack.create()
    running = await until(
        handle,
        lambda s: s.state is S.RUNNING and s.standby.problem is not None,
        "running, its standby not made",
    )
    assert running.standby.instance is None and running.standby.retry_at is not None
    assert "standby_failed" in [e.event_type for e in recorded_events(stack.engine, handle)]
    # Tried again on its own schedule (the provider remembers a stocked-out zone for minutes,
    # so the retries find no room until then), while the GPU machine runs on.
    later = await until(handle, lambda s: s.standby.retries >= 2, "its standby tried again")
    assert later.state is S.RUNNING
    await handle.execute_update(MachineWorkflow.destroy, ActionInput())
    assert [
        i for i in await stack.sim.gce_admin.instances() if handle.id[8:] in str(i["name"])
    ] == []
