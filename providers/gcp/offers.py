"""Offers from the machine-type catalogue: one per machine type, zone and provisioning model
that matches a search, priced with the requested disk."""

from __future__ import annotations

from core.contracts.machine import MachineKind
from core.regions import countries_for
from providers.base import InvalidRequest, Offer, OfferQuery
from providers.gcp.catalogue import (
    MACHINE_TYPES,
    MAX_DISK_GB,
    REGIONS,
    ZONES,
    MachineType,
    disk_price_per_hour,
    region_of_zone,
)

PROVIDER_NAME = "gcp"
# The query's `provider_data` keys a GCP search reads.
MACHINE_TYPE_KEY = "machine_type"
ZONE_KEY = "zone"
SPOT_KEY = "spot"
# Set when the user chose the zone: a stockout there is final, not a move to the next zone.
ZONE_PINNED_KEY = "zone_pinned"
# Compute Engine's published availability for a single-zone VM; Spot VMs may be preempted any
# time, which a reliability figure cannot say, so they rank below.
ON_DEMAND_RELIABILITY = 0.999
SPOT_RELIABILITY = 0.9
DEFAULT_MACHINE_TYPE = "e2-medium"


def offer_id(machine_type: str, zone: str, *, spot: bool) -> str:
    return f"{machine_type}@{zone}" + (":spot" if spot else "")


def _zones_in(region: str | None) -> list[str]:
    """The zones a region filter names: a GCE zone or region, a continent code, a country."""
    if region is None:
        return list(ZONES)
    wanted = region.strip().lower()
    if wanted in ZONES:
        return [wanted]
    if wanted in REGIONS:
        return [zone for zone, owner in ZONES.items() if owner == wanted]
    try:
        countries = countries_for(region)
    except ValueError:
        known = ", ".join(REGIONS)
        raise InvalidRequest(
            f"unknown region {region!r}: use a region code (NA, EU, SA, ...), a country code,"
            f" or a GCP region ({known}) or zone"
        ) from None
    return [zone for zone in ZONES if region_of_zone(zone).country in countries]


def _machine_types(name: str | None) -> list[MachineType]:
    if name is None:
        return list(MACHINE_TYPES.values())
    machine = MACHINE_TYPES.get(name)
    if machine is None:
        known = ", ".join(MACHINE_TYPES)
        raise InvalidRequest(f"unknown GCP machine type {name!r} (known: {known})")
    return [machine]


def catalogue_offers(query: OfferQuery) -> list[Offer]:
    """Every catalogue offer matching `query`, cheapest first. Without a machine type the
    search is for any CPU machine, so every type is offered and the cheapest wins."""
    if query.kind is not MachineKind.CPU:
        raise InvalidRequest("GCP machines are CPU machines: ask for kind cpu")
    disk_gb = query.min_disk_gb or 10.0
    if disk_gb > MAX_DISK_GB:
        return []
    zone = query.provider_data.get(ZONE_KEY)
    zones = _zones_in(zone) if zone else _zones_in(query.region)
    if zone and query.region and zone not in _zones_in(query.region):
        return []  # a zone outside the region asked for: nothing matches both
    spot = query.provider_data.get(SPOT_KEY) == "true"
    reliability = SPOT_RELIABILITY if spot else ON_DEMAND_RELIABILITY
    if query.min_reliability is not None and reliability < query.min_reliability:
        return []
    offers: list[Offer] = []
    for machine in _machine_types(query.provider_data.get(MACHINE_TYPE_KEY)):
        for name in zones:
            region = region_of_zone(name)
            price = machine.price(region, spot=spot) + disk_price_per_hour(disk_gb)
            if query.max_price is not None and price > query.max_price:
                continue
            offers.append(
                Offer(
                    offer_id=offer_id(machine.name, name, spot=spot),
                    provider=PROVIDER_NAME,
                    gpu_name="",
                    num_gpus=0,
                    gpu_ram_gb=0.0,
                    price_per_hour=round(price, 6),
                    reliability=reliability,
                    geolocation=f"{region.city}, {region.country}",
                    country=region.country,
                    disk_space_gb=float(MAX_DISK_GB),
                    cpu_cores=float(machine.guest_cpus),
                    cpu_ram_gb=machine.memory_gb,
                    provider_data={
                        MACHINE_TYPE_KEY: machine.name,
                        ZONE_KEY: name,
                        "region": region.name,
                        SPOT_KEY: "true" if spot else "false",
                        ZONE_PINNED_KEY: "true" if zone else "false",
                    },
                )
            )
    # Stable: zones of one region stay together in catalogue order (a stockout's fallback).
    offers.sort(key=lambda o: o.price_per_hour)
    return offers[: query.limit]
