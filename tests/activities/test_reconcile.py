"""The fleet reconciler against real sims (vast.ai and Compute Engine) and a real database:
an instance no live machine owns is reported at once and destroyed once the grace period has
passed; an owned one, another installation's, or one whose label predates installations is
never destroyed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.reconcile import ReconcileActivities
from core.accounts import create_user
from core.contracts.monitor import MonitorTick
from core.contracts.standby import ProviderEvent
from core.contracts.states import InstanceStatus
from core.db import session_scope
from core.models import Machine
from core.orphans.table import OrphanInstance
from providers.base import CreateRequest, OfferQuery
from providers.registry import ProviderRegistry
from providers.retry import RetryPolicy
from providers.vast import VastProvider
from tests.fixtures.sim import SimHandle
from tests.providers.gcp_helpers import create_request, gcp_provider
from tests.sim.helpers import new_key, public

INSTALLATION = "irecon001"
FAST = RetryPolicy(max_retries=1, initial_delay=0.01, max_delay=0.05)
IMAGE = "pytorch/pytorch:latest"
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
async def registry(sim: SimHandle) -> AsyncIterator[ProviderRegistry]:
    vast = VastProvider(sim.url, sim.api_key, retry=FAST, installation=INSTALLATION)
    gcp = gcp_provider(sim, project="reconcile", installation=INSTALLATION)
    registry = ProviderRegistry({"vast": vast, "gcp": gcp})
    yield registry
    await registry.aclose()


def machine_row(engine: Engine, machine_id: str, status: str, instance_id: str | None) -> None:
    with session_scope(engine) as session:
        owner = create_user(session, f"owner-{machine_id}")
        session.add(
            Machine(
                id=machine_id,
                owner_id=owner.id,
                gpu_name="RTX 4090",
                image=IMAGE,
                disk_gb=10,
                status=status,
                instance_id=instance_id,
            )
        )
        session.commit()


async def vast_instance(registry: ProviderRegistry, label: str, offer: int) -> str:
    vast = registry.get("vast")
    assert isinstance(vast, VastProvider)
    offers = await vast.search_offers(OfferQuery(limit=offer + 1))
    made = await vast.create_instance(CreateRequest(offers[offer].offer_id, IMAGE, 10, label))
    return made.instance_id


async def test_orphans_are_reported_then_destroyed_after_the_grace_period(
    registry: ProviderRegistry, sim: SimHandle, sqlite_engine: Engine
) -> None:
    engine = sqlite_engine
    owned = await vast_instance(registry, "dumont-m-0000000000a1-1", 0)
    machine_row(engine, "m-0000000000a1", "running", owned)
    orphan = await vast_instance(registry, "dumont-m-0000000000a2-1", 1)  # no such machine
    asleep = await vast_instance(registry, "dumont-m-0000000000a3-2", 2)
    machine_row(engine, "m-0000000000a3", "hibernated", None)  # its destroy was lost
    legacy_vast = VastProvider(sim.url, sim.api_key, retry=FAST)  # before installations
    try:
        offers = await legacy_vast.search_offers(OfferQuery(limit=4))
        legacy = await legacy_vast.create_instance(
            CreateRequest(offers[3].offer_id, IMAGE, 10, "dumont-m-0000000000a4-1")
        )
    finally:
        await legacy_vast.aclose()
    gcp = registry.get("gcp")
    gce_orphan = await gcp.create_instance(
        create_request("dumont-m-0000000000a5-1", public(new_key()))
    )

    acts = ReconcileActivities(registry, engine, grace_seconds=600)
    env = ActivityEnvironment()
    first = await env.run(acts.reconcile_instances, MonitorTick(now=T0))
    assert (first.listed, first.orphans, first.new_orphans, first.destroyed) == (5, 4, 4, 0)
    with session_scope(engine) as session:
        rows = {r.instance_id: r for r in session.exec(select(OrphanInstance))}
    assert set(rows) == {orphan, asleep, legacy.instance_id, gce_orphan.instance_id}
    assert rows[asleep].reason == "machine m-0000000000a3 is hibernated and holds no instance"
    assert rows[orphan].reason == "no machine m-0000000000a2 exists"

    # Inside the grace period nothing goes; the sightings are kept, not renewed.
    soon = await env.run(acts.reconcile_instances, MonitorTick(now=T0 + timedelta(minutes=9)))
    assert (soon.orphans, soon.new_orphans, soon.destroyed) == (4, 0, 0)

    late = await env.run(acts.reconcile_instances, MonitorTick(now=T0 + timedelta(minutes=11)))
    assert late.destroyed == 3  # the legacy label may be another installation's: kept
    vast_left = {str(i["id"]) for i in await sim.admin.instances()}
    assert vast_left == {owned, legacy.instance_id}
    assert await sim.gce_admin.instances() == []

    after = await env.run(acts.reconcile_instances, MonitorTick(now=T0 + timedelta(minutes=20)))
    assert (after.listed, after.orphans, after.destroyed) == (2, 1, 0)


async def test_policy_report_never_destroys(
    registry: ProviderRegistry, sim: SimHandle, sqlite_engine: Engine
) -> None:
    orphan = await vast_instance(registry, "dumont-m-0000000000b1-1", 0)
    acts = ReconcileActivities(registry, sqlite_engine, grace_seconds=0, policy="report")
    env = ActivityEnvironment()
    await env.run(acts.reconcile_instances, MonitorTick(now=T0))
    later = await env.run(acts.reconcile_instances, MonitorTick(now=T0 + timedelta(days=1)))
    assert (later.orphans, later.destroyed) == (1, 0)
    assert orphan in {str(i["id"]) for i in await sim.admin.instances()}


async def test_a_create_not_yet_recorded_is_not_an_orphan_too_soon(
    registry: ProviderRegistry, sim: SimHandle, sqlite_engine: Engine
) -> None:
    """A grace period below the create timeout is raised to it: a machine whose row does not
    name its new instance yet keeps it (and a starting machine's is always its own)."""
    starting = await vast_instance(registry, "dumont-m-0000000000c1-2", 0)
    machine_row(sqlite_engine, "m-0000000000c1", "starting", None)
    unrecorded = await vast_instance(registry, "dumont-m-0000000000c2-1", 1)
    acts = ReconcileActivities(registry, sqlite_engine, grace_seconds=0)
    env = ActivityEnvironment()
    await env.run(acts.reconcile_instances, MonitorTick(now=T0))
    early = await env.run(acts.reconcile_instances, MonitorTick(now=T0 + timedelta(minutes=4)))
    assert (early.orphans, early.destroyed) == (1, 0)
    live = {str(i["id"]) for i in await sim.admin.instances()}
    assert {starting, unrecorded} <= live


class Told:
    """The machines' workflows as the reconciler tells them (MachineNotifier)."""

    def __init__(self) -> None:
        self.events: dict[str, ProviderEvent] = {}

    async def provider_event(self, machine_id: str, event: ProviderEvent) -> None:
        self.events[machine_id] = event


async def test_a_machine_whose_instance_vanished_or_was_interrupted_is_told(
    registry: ProviderRegistry, sim: SimHandle, sqlite_engine: Engine
) -> None:
    """The provider event that starts a failover (or a hibernate or an error without a
    standby): for an up machine whose instance is gone or was stopped under it, never for one
    whose instance runs or that holds none."""
    vast = registry.get("vast")
    gone = await vast_instance(registry, "dumont-m-0000000000d1-1", 0)
    machine_row(sqlite_engine, "m-0000000000d1", "running", gone)
    await vast.destroy_instance(gone)
    spot = await vast_instance(registry, "dumont-m-0000000000d2-1", 1)
    machine_row(sqlite_engine, "m-0000000000d2", "idle", spot)
    await sim.admin.interrupt(int(spot))
    fine = await vast_instance(registry, "dumont-m-0000000000d3-1", 2)
    machine_row(sqlite_engine, "m-0000000000d3", "running", fine)
    machine_row(sqlite_engine, "m-0000000000d4", "hibernated", None)
    told = Told()
    acts = ReconcileActivities(registry, sqlite_engine, machines=told)
    result = await ActivityEnvironment().run(acts.reconcile_instances, MonitorTick(now=T0))
    assert set(told.events) == {"m-0000000000d1", "m-0000000000d2"} and result.vanished == 2
    assert told.events["m-0000000000d1"].status is InstanceStatus.GONE
    assert told.events["m-0000000000d1"].instance_id == gone
    assert told.events["m-0000000000d2"].status is InstanceStatus.STOPPED
