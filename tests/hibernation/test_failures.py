"""Hibernate and wake when things fail: the store unreachable during the snapshot, no offer on
the market, an offer rented by someone else between search and create, a storm of 429s and
5xx from the provider. Each ends as a user can rely on: a clear error and the machine as it was,
or the job done anyway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from core.contracts.activities import ActivityName
from core.contracts.hibernation import HibernateInput, WakeInput
from core.contracts.states import MachineState
from providers.base import OfferQuery
from providers.vast import VastProvider
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.hibernation.stack import Stack, running_stack
from tests.hibernation.watch import (
    activities_scheduled,
    assert_hibernated_safely,
    assert_only_instance,
    event_kinds,
    heartbeat,
    last_attempt,
    machine_snapshots,
    running_activity,
    until,
)
from tests.workflows.machines import (
    MachineHandle,
    create_machine,
    live_instances,
    recorded_events,
    until_state,
)
from workflows.machine import MachineWorkflow

S = MachineState
SNAPSHOT_ATTEMPTS = 2
WAKE_OFFER_ATTEMPTS = 2
PROVISION = ActivityName.PROVISION_INSTANCE
WORKSPACE = "cd /workspace && mkdir -p data && head -c 300000 /dev/urandom > data/x.bin"
DESCRIBE = "cd /workspace && find . -printf '%y %m %s %p\\n' | sort && sha256sum data/x.bin"


@pytest.fixture
async def stack(
    tmp_path: Path,
    dev_env: WorkflowEnvironment,
    sim: SimHandle,
    s3: S3Endpoint,
    sqlite_engine: Engine,
) -> AsyncIterator[Stack]:
    async with running_stack(
        tmp_path,
        dev_env.client,
        sqlite_engine,
        sim,
        s3,
        snapshot_attempts=SNAPSHOT_ATTEMPTS,
        snapshot_retry_seconds=1,
        wake_offer_attempts=WAKE_OFFER_ATTEMPTS,
        wake_offer_retry_seconds=1,
    ) as stack:
        yield stack


async def _running(stack: Stack) -> tuple[MachineHandle, str, str]:
    """A running machine with a small workspace: its handle, instance id and description."""
    handle = await create_machine(stack.client, stack.engine, stack.task_queue)
    running = await until_state(handle, S.RUNNING)
    await stack.run(running, WORKSPACE)
    assert running.instance is not None
    return handle, running.instance.instance_id, await stack.run(running, DESCRIBE)


async def _hibernated(stack: Stack) -> tuple[MachineHandle, str]:
    """A hibernated machine and the description of its workspace."""
    handle, instance_id, before = await _running(stack)
    hibernated = await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
    await assert_hibernated_safely(
        stack.engine, stack.sim, handle, hibernated.snapshot_id, instance_id
    )
    return handle, before


async def _woke_intact(stack: Stack, handle: MachineHandle, before: str) -> str:
    """After a wake: running on exactly one instance, the workspace as it was. Its id."""
    awake = await until_state(handle, S.RUNNING)
    assert awake.instance is not None
    await assert_only_instance(stack.engine, stack.sim, handle, awake.instance.instance_id)
    assert await stack.run(awake, DESCRIBE) == before
    return awake.instance.instance_id


async def test_store_unreachable_fails_the_hibernate_and_keeps_the_machine(stack: Stack) -> None:
    handle, instance_id, before = await _running(stack)
    stack.s3.stop()

    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(MachineWorkflow.hibernate, HibernateInput())
    message = str(failed.value.cause)
    assert "could not hibernate" in message and "nothing destroyed" in message, message
    store = stack.s3.endpoint.removeprefix("http://")
    assert store in message, message  # says which endpoint could not be reached
    assert "Signature" not in message and stack.s3.secret_key not in message  # no secrets

    # Tried as often as the policy says, then left alone: same instance, still up, same data.
    tries = await last_attempt(stack.client, handle, ActivityName.SNAPSHOT_WORKSPACE)
    assert tries == SNAPSHOT_ATTEMPTS
    state = await handle.query(MachineWorkflow.state)
    assert state.state in (S.RUNNING, S.IDLE)
    assert state.instance is not None and state.instance.instance_id == instance_id
    assert [str(i["id"]) for i in await live_instances(stack.sim, handle)] == [instance_id]
    assert await stack.run(state, DESCRIBE) == before
    assert [r.status for r in machine_snapshots(stack.engine, handle)] == ["pending"]

    events = {e.event_type: e for e in recorded_events(stack.engine, handle)}
    for kind in ("snapshot_failed", "hibernate_failed"):
        assert kind in events and store in (events[kind].reason or ""), events.get(kind)
    assert "hibernated" not in events and events["hibernate_failed"].state == state.state.value


async def test_wake_without_offers_stays_hibernated_until_one_is_back(stack: Stack) -> None:
    handle, before = await _hibernated(stack)
    provisions = await activities_scheduled(stack.client, handle, PROVISION)

    # Every RTX 4090 on the market is rented by others.
    market = VastProvider(stack.sim.url, stack.sim.api_key)
    try:
        offers = await market.search_offers(OfferQuery(gpu_name="RTX 4090", limit=1000))
    finally:
        await market.aclose()
    assert offers
    for offer in offers:
        await stack.sim.admin.take_offer(int(offer.offer_id))

    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(MachineWorkflow.wake, WakeInput())
    message = str(failed.value.cause)
    assert "could not wake" in message and "no offer matches" in message, message
    assert "RTX 4090" in message, message

    state = await handle.query(MachineWorkflow.state)
    assert state.state is S.HIBERNATED and state.instance is None
    assert "no offer matches" in (state.reason or "")
    assert await live_instances(stack.sim, handle) == []
    # Searched per policy: in the machine's region, then anywhere, on each of the attempts.
    searched = await activities_scheduled(stack.client, handle, PROVISION) - provisions
    assert searched == WAKE_OFFER_ATTEMPTS * 2
    kinds = event_kinds(stack.engine, handle)
    assert kinds[-2:] == ["waking", "wake_failed"] and "woke" not in kinds

    # The market has GPUs again: the same machine wakes with its workspace.
    for offer in offers:
        await stack.sim.admin.release_offer(int(offer.offer_id))
    woke = await handle.execute_update(MachineWorkflow.wake, WakeInput())
    assert woke.state is S.RUNNING
    await _woke_intact(stack, handle, before)


async def test_wake_moves_on_when_its_offer_is_taken_before_the_create(stack: Stack) -> None:
    handle, before = await _hibernated(stack)

    # Provider calls take a second, so the offer can be taken while the create is on its way.
    await stack.sim.admin.set_latency(1.0)
    wake = await handle.start_update(
        MachineWorkflow.wake, WakeInput(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )

    async def offer_being_rented() -> str | None:
        pending = await running_activity(handle, ActivityName.PROVISION_INSTANCE)
        # It names the offer it is about to rent, then sends the create.
        return None if pending is None else heartbeat(pending)

    taken = await until(offer_being_rented, "the wake renting an offer")
    await stack.sim.admin.take_offer(int(taken))
    await stack.sim.admin.set_latency(0)  # the create already on its way still waits its second
    woke = await wake.result()

    assert woke.state is S.RUNNING and woke.instance.offer_id not in ("", taken)
    assert await last_attempt(stack.client, handle, PROVISION) == 1  # moved on, no retry needed
    assert await _woke_intact(stack, handle, before) == woke.instance.instance_id


async def test_wake_rides_out_a_storm_of_429_and_5xx(stack: Stack) -> None:
    handle, before = await _hibernated(stack)

    # More failures in a row than the provider client retries on its own: the activity's
    # retry policy has to take over too.
    await stack.sim.admin.fail_next(4, status=429, retry_after=0.1)
    await stack.sim.admin.fail_next(4, status=503, body="json")
    woke = await handle.execute_update(MachineWorkflow.wake, WakeInput())

    assert woke.state is S.RUNNING
    assert (await stack.sim.admin.status())["faults"] == []  # the storm hit this wake
    assert await last_attempt(stack.client, handle, PROVISION) > 1
    await _woke_intact(stack, handle, before)
    kinds = event_kinds(stack.engine, handle)
    assert "wake_failed" not in kinds and kinds.count("woke") == 1
