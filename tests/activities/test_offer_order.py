"""Rental order: the cheapest first, near-ties spread so concurrent creates don't collide."""

from __future__ import annotations

from activities.offers import in_rental_order
from providers.base import Offer


def offer(offer_id: str, price: float) -> Offer:
    return Offer(
        offer_id=offer_id,
        provider="vast",
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        price_per_hour=price,
        reliability=0.95,
        geolocation="Oslo, NO",
        country="NO",
        disk_space_gb=100,
        cpu_cores=8,
        cpu_ram_gb=64,
    )


def test_a_clearly_cheaper_offer_is_always_first() -> None:
    offers = [offer("b", 0.50), offer("a", 0.30), offer("c", 0.90)]
    for _ in range(20):
        assert [o.offer_id for o in in_rental_order(offers)] == ["a", "b", "c"]


def test_near_ties_are_spread_but_never_ahead_of_a_cheaper_band() -> None:
    offers = [offer(f"tie{i}", 0.400 + i * 0.001) for i in range(6)] + [offer("dear", 0.60)]
    firsts = set()
    for _ in range(60):
        ordered = in_rental_order(offers)
        assert ordered[-1].offer_id == "dear"
        assert sorted(o.offer_id for o in ordered[:6]) == [f"tie{i}" for i in range(6)]
        firsts.add(ordered[0].offer_id)
    assert len(firsts) > 1  # concurrent machines would not all race for the same offer
