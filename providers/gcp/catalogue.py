"""What Dumont rents on Compute Engine: zones, E2 machine types and their prices.

GCE has no offer marketplace and its API has no prices, so offers come from this catalogue.
Prices are Google's list and Spot prices per hour (reference/gce_api.md §6, Linux, no premium
image): `billed vCPUs × rate + GB × rate`, shared-core types billed at a fraction of a vCPU.
Spot prices move up to once a day; these are a snapshot, good for ranking and estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730.0
# Standard persistent disk, $ per GB-month (the boot disk: a standby keeps bytes, not IOPS).
DISK_TYPE = "pd-standard"
DISK_PRICE_GB_MONTH = 0.040
MAX_DISK_GB = 65536


@dataclass(frozen=True)
class Region:
    name: str
    city: str
    country: str  # ISO 3166 alpha-2
    continent: str  # the region codes of core/regions.py: NA, EU, SA, ...
    vcpu_hour: float
    gb_hour: float
    spot_vcpu_hour: float
    spot_gb_hour: float


@dataclass(frozen=True)
class MachineType:
    name: str
    guest_cpus: int
    memory_gb: float
    billed_vcpus: float  # shared-core types bill a fraction of their vCPUs

    def price(self, region: Region, *, spot: bool) -> float:
        vcpu, gb = (
            (region.spot_vcpu_hour, region.spot_gb_hour)
            if spot
            else (region.vcpu_hour, region.gb_hour)
        )
        return self.billed_vcpus * vcpu + self.memory_gb * gb


REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("us-central1", "Council Bluffs", "US", "NA", 0.021814, 0.002923, 0.008721, 0.001169),
        Region("europe-west1", "St. Ghislain", "BE", "EU", 0.023991, 0.003217, 0.009597, 0.001286),
        Region("southamerica-east1", "Osasco", "BR", "SA", 0.034625, 0.004640, 0.006191, 0.000827),
    )
}

ZONES: dict[str, str] = {  # zone -> region, in the order a stockout moves through them
    "us-central1-a": "us-central1",
    "us-central1-b": "us-central1",
    "us-central1-c": "us-central1",
    "us-central1-f": "us-central1",
    "europe-west1-b": "europe-west1",
    "europe-west1-c": "europe-west1",
    "europe-west1-d": "europe-west1",
    "southamerica-east1-a": "southamerica-east1",
    "southamerica-east1-b": "southamerica-east1",
    "southamerica-east1-c": "southamerica-east1",
}

MACHINE_TYPES: dict[str, MachineType] = {
    m.name: m
    for m in (
        MachineType("e2-micro", 2, 1.0, 0.25),
        MachineType("e2-small", 2, 2.0, 0.5),
        MachineType("e2-medium", 2, 4.0, 1.0),
        MachineType("e2-standard-2", 2, 8.0, 2.0),
        MachineType("e2-standard-4", 4, 16.0, 4.0),
    )
}


def region_of_zone(zone: str) -> Region:
    return REGIONS[ZONES[zone]]


def zones_of(region: str) -> list[str]:
    return [zone for zone, owner in ZONES.items() if owner == region]


def disk_price_per_hour(disk_gb: float) -> float:
    return disk_gb * DISK_PRICE_GB_MONTH / HOURS_PER_MONTH


def price_per_hour(machine_type: str, zone: str, *, spot: bool, disk_gb: float) -> float | None:
    """What an instance costs per hour running, disk included; None off the catalogue."""
    machine = MACHINE_TYPES.get(machine_type)
    if machine is None or zone not in ZONES:
        return None
    return machine.price(region_of_zone(zone), spot=spot) + disk_price_per_hour(disk_gb)
