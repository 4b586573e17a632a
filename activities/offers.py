"""From a machine spec to an offer search, and a sentence saying what was searched."""

from __future__ import annotations

import random

from core.contracts.machine import MachineKind, MachineSpec
from providers.base import Offer, OfferQuery


def offer_query(spec: MachineSpec, *, limit: int) -> OfferQuery:
    gpu = spec.kind is MachineKind.GPU  # a CPU spec's GPU fields are defaults, not asks
    return OfferQuery(
        kind=spec.kind,
        gpu_name=spec.gpu_name if gpu else None,
        num_gpus=spec.num_gpus if gpu else None,
        max_price=spec.max_price,
        region=spec.region,
        min_reliability=spec.min_reliability,
        min_vram_gb=spec.min_vram_gb if gpu else None,
        min_disk_gb=float(spec.disk_gb),
        sort="price",
        limit=limit,
        interruptible=spec.interruptible,
        bid_price=spec.bid_price if spec.interruptible else None,
        provider_data=catalogue_choice(spec),
    )


def catalogue_choice(spec: MachineSpec) -> dict[str, str]:
    """The spec's machine-type catalogue fields as the search's `provider_data` (GCP reads
    them; a marketplace ignores them)."""
    chosen = {"machine_type": spec.machine_type, "zone": spec.zone}
    data = {key: value for key, value in chosen.items() if value}
    if spec.spot:
        data["spot"] = "true"
    return data


def describe_search(spec: MachineSpec, *, excluded: int = 0) -> str:
    gpu = spec.kind is MachineKind.GPU
    machine = f"{spec.num_gpus}x {spec.gpu_name or 'any GPU'}" if gpu else "a CPU machine"
    if spec.machine_type:
        machine = spec.machine_type + (" (Spot)" if spec.spot else "")
    parts = [machine, f"{spec.disk_gb} GB disk"]
    if spec.interruptible:
        bid = "at the offer's minimum" if spec.bid_price is None else f"${spec.bid_price:g}/h"
        parts.append(f"interruptible, bidding {bid}")
    if spec.zone:
        parts.append(f"zone {spec.zone}")
    if spec.region:
        parts.append(f"region {spec.region}")
    if spec.max_price is not None:
        parts.append(f"at most ${spec.max_price:.3f}/h")
    if spec.min_reliability is not None:
        parts.append(f"reliability at least {spec.min_reliability:g}")
    if gpu and spec.min_vram_gb is not None:
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
