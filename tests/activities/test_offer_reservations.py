"""Offer reservations: machines created together, on one worker or several, each try an offer
of their own; a database that cannot be reached never holds a provision back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from temporalio.testing import ActivityEnvironment

from activities.offers import offer_query
from activities.provider import ProviderActivities
from core.contracts import instance_label
from core.contracts.activities import DestroyInstancesInput, ProvisionInput
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.providers import ProviderFeature
from core.db import make_engine
from core.offers.reservations import OfferReservations
from core.ssh import SshIdentity
from providers.base import CreateRequest, ProviderInstance
from providers.registry import ProviderRegistry
from tests.fixtures.sim import SimHandle

SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch", disk_gb=20)
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class RecordingProvider:
    """The real vast provider, noting every offer a create was tried on."""

    def __init__(self, registry: ProviderRegistry) -> None:
        [self._vast] = registry.with_feature(ProviderFeature.OFFER_MARKETPLACE, "vast")
        self.tried: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._vast, name)

    async def create_instance(self, request: CreateRequest) -> ProviderInstance:
        self.tried.append(request.offer_id)
        return await self._vast.create_instance(request)


async def provision(acts: ProviderActivities, machine_id: str) -> InstanceInfo:
    return await ActivityEnvironment().run(
        acts.provision_instance,
        ProvisionInput(machine_id=machine_id, spec=SPEC, label=instance_label(machine_id, 1)),
    )


async def test_machines_created_together_on_two_workers_each_try_their_own_offer(
    registry: ProviderRegistry, identity: SshIdentity, engine: Engine
) -> None:
    spy = RecordingProvider(registry)
    lookup = ProviderRegistry({"vast": spy})  # type: ignore[dict-item]
    # Two workers: their own activities, one database between them.
    workers = [
        ProviderActivities(lookup, identity, reservations=OfferReservations(engine))
        for _ in range(2)
    ]
    ids = [f"m{uuid.uuid4().hex[:8]}" for _ in range(12)]
    try:
        infos = await asyncio.gather(
            *(provision(workers[n % 2], machine_id) for n, machine_id in enumerate(ids))
        )
        # Every create went to a different offer: none lost a race to another machine.
        assert len(spy.tried) == len(ids)
        assert len(set(spy.tried)) == len(ids)
        assert sorted(spy.tried) == sorted(info.offer_id for info in infos)
    finally:
        for machine_id in ids:
            await ActivityEnvironment().run(
                workers[0].destroy_instances,
                DestroyInstancesInput(provider="vast", machine_id=machine_id),
            )


def test_a_claim_is_held_for_its_attempt_until_it_expires(engine: Engine) -> None:
    now = [T0]
    reservations = OfferReservations(engine, hold=timedelta(minutes=2), clock=lambda: now[0])
    assert reservations.claim("vast", "101", "dumont-ma-1")
    assert not reservations.claim("vast", "101", "dumont-mb-1")  # held by another provision
    assert reservations.claim("vast", "101", "dumont-ma-1")  # its own retry takes it back
    assert reservations.claim("other", "101", "dumont-mb-1")  # offer ids are per provider
    assert reservations.held_by_others("vast", "dumont-mb-1") == {"101"}
    assert reservations.held_by_others("vast", "dumont-ma-1") == set()

    now[0] = T0 + timedelta(minutes=3)  # the first claim (renewed at T0) has lapsed
    assert reservations.held_by_others("vast", "dumont-mb-1") == set()
    assert reservations.claim("vast", "101", "dumont-mb-1")
    assert not reservations.claim("vast", "101", "dumont-ma-1")


def test_an_unreachable_database_lets_provisions_go_on_without_claims() -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        reservations = OfferReservations(engine)
        assert reservations.held_by_others("vast", "dumont-ma-1") == set()
        assert reservations.claim("vast", "101", "dumont-ma-1")
    finally:
        engine.dispose()


async def test_a_provision_passes_over_offers_others_hold(
    cloud: SimHandle, registry: ProviderRegistry, identity: SshIdentity, engine: Engine
) -> None:
    reservations = OfferReservations(engine)
    acts = ProviderActivities(registry, identity, reservations=reservations)
    [vast] = registry.with_feature(ProviderFeature.OFFER_MARKETPLACE, "vast")
    offers = sorted(
        await vast.search_offers(offer_query(SPEC, limit=50)), key=lambda o: o.price_per_hour
    )
    for offer in offers[:3]:  # another worker is renting the three cheapest
        assert reservations.claim("vast", offer.offer_id, "dumont-elsewhere-1")
    machine_id = f"m{uuid.uuid4().hex[:8]}"
    try:
        info = await provision(acts, machine_id)
        assert info.offer_id not in {offer.offer_id for offer in offers[:3]}
        assert info.offer_id in {offer.offer_id for offer in offers}
    finally:
        await ActivityEnvironment().run(
            acts.destroy_instances, DestroyInstancesInput(provider="vast", machine_id=machine_id)
        )
