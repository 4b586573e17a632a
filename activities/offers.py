"""From a machine spec to an offer search, and a sentence saying what was searched."""

from __future__ import annotations

import random

from core.contracts.machine import MachineSpec
from providers.base import Offer, OfferQuery


def offer_query(spec: MachineSpec, *, limit: int) -> OfferQuery:
    return OfferQuery(
        gpu_name=spec.gpu_name,
        num_gpus=spec.num_gpus,
        max_price=spec.max_price,
        region=spec.region,
        min_reliability=spec.min_reliability,
        min_vram_gb=spec.min_vram_gb,
        min_disk_gb=float(spec.disk_gb),
        sort="price",
        limit=limit,
    )


def describe_search(spec: MachineSpec, *, excluded: int = 0) -> str:
    parts = [f"{spec.num_gpus}x {spec.gpu_name}", f"{spec.disk_gb} GB disk"]
    if spec.region:
        parts.append(f"region {spec.region}")
    if spec.max_price is not None:
        parts.append(f"at most ${spec.max_price:.3f}/h")
    if spec.min_reliability is not None:
        parts.append(f"reliability at least {spec.min_reliability:g}")
    if spec.min_vram_gb is not None:
        parts.append(f"at least {spec.min_vram_gb:g} GB VRAM per GPU")
    text = f"{spec.provider} offers for " + ", ".join(parts)
    if excluded:
        text += f" (leaving out {excluded} offer(s) that already failed to boot)"
    return text


def in_rental_order(offers: list[Offer], *, tie_band: float = 0.02) -> list[Offer]:
    """Cheapest first, with offers priced within `tie_band` of each other shuffled.

    Machines created together (a team starting 50 at once) would otherwise all race for the
    same cheapest offer and lose it to each other one by one; every lost race is a create call,
    and vast.ai rate-limits creates to one per 4.5 s.
    """
    ordered = sorted(offers, key=lambda o: o.price_per_hour)
    result: list[Offer] = []
    while ordered:
        ceiling = ordered[0].price_per_hour * (1 + tie_band)
        band = [o for o in ordered if o.price_per_hour <= ceiling]
        ordered = ordered[len(band) :]
        random.shuffle(band)
        result += band
    return result
