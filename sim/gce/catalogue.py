"""The static catalogue: regions, zones, E2 machine types and their list and Spot prices.

Prices are per hour, from the unit rates in the reference (§6): `vCPU_billed × rate + GB ×
rate`, with the shared-core types billed as 0.25, 0.5 and 1 vCPU as Google bills them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

BASE = "https://www.googleapis.com/compute/v1"
# A fixed creation time for the static resources (GCE shows years-old timestamps here).
CATALOGUE_CREATED = "1969-12-31T16:00:00.000-08:00"


@dataclass(frozen=True)
class Rates:
    vcpu: float
    gb: float


@dataclass(frozen=True)
class Region:
    name: str
    zones: tuple[str, ...]
    on_demand: Rates
    spot: Rates


@dataclass(frozen=True)
class MachineType:
    name: str
    guest_cpus: int
    memory_mb: int
    shared: bool
    billed_vcpus: float


REGIONS = {
    region.name: region
    for region in (
        Region(
            "us-central1",
            ("a", "b", "c", "f"),
            Rates(0.021814, 0.002923),
            Rates(0.008721, 0.001169),
        ),
        Region(
            "europe-west1", ("b", "c", "d"), Rates(0.023991, 0.003217), Rates(0.009597, 0.001286)
        ),
        Region(
            "southamerica-east1",
            ("a", "b", "c"),
            Rates(0.034625, 0.004640),
            Rates(0.006191, 0.000827),
        ),
    )
}
ZONES = {
    f"{region.name}-{suffix}": region for region in REGIONS.values() for suffix in region.zones
}
MACHINE_TYPES = {
    mt.name: mt
    for mt in (
        MachineType("e2-micro", 2, 1024, True, 0.25),
        MachineType("e2-small", 2, 2048, True, 0.5),
        MachineType("e2-medium", 2, 4096, True, 1.0),
        MachineType("e2-standard-2", 2, 8192, False, 2.0),
        MachineType("e2-standard-4", 4, 16384, False, 4.0),
    )
}


def region_of(zone: str) -> str:
    return ZONES[zone].name


def price_per_hour(zone: str, machine_type: str, spot: bool) -> float:
    """Compute's hourly price (no disk, no external IP)."""
    mt = MACHINE_TYPES[machine_type]
    rates = ZONES[zone].spot if spot else ZONES[zone].on_demand
    return round(mt.billed_vcpus * rates.vcpu + mt.memory_mb / 1024 * rates.gb, 6)


def _stable_id(text: str) -> str:
    # Static resources keep the same id across restarts, as GCE's do.
    return str(1_000_000_000_000 + zlib.crc32(text.encode()))


def zone_json(project: str, zone: str) -> dict[str, Any]:
    region = region_of(zone)
    return {
        "kind": "compute#zone",
        "id": _stable_id(zone),
        "creationTimestamp": CATALOGUE_CREATED,
        "name": zone,
        "description": zone,
        "status": "UP",
        "region": f"{BASE}/projects/{project}/regions/{region}",
        "selfLink": f"{BASE}/projects/{project}/zones/{zone}",
        "availableCpuPlatforms": ["Intel Broadwell", "Intel Skylake", "AMD Rome"],
        "supportsPzs": False,
    }


def machine_type_json(project: str, zone: str, name: str) -> dict[str, Any]:
    mt = MACHINE_TYPES[name]
    shape = f"{mt.guest_cpus} vCPU{'s' if mt.guest_cpus > 1 else ''}, {mt.memory_mb // 1024} GB"
    return {
        "kind": "compute#machineType",
        "id": _stable_id(name),
        "creationTimestamp": CATALOGUE_CREATED,
        "name": name,
        "description": f"Efficient Instance, {shape}"
        + (f" ({mt.billed_vcpus:g} shared physical core)" if mt.shared else ""),
        "guestCpus": mt.guest_cpus,
        "memoryMb": mt.memory_mb,
        "imageSpaceGb": 0,
        "maximumPersistentDisks": 16 if mt.shared else 128,
        "maximumPersistentDisksSizeGb": "3072" if mt.shared else "263168",
        "isSharedCpu": mt.shared,
        "zone": zone,
        "selfLink": f"{BASE}/projects/{project}/zones/{zone}/machineTypes/{name}",
        "architecture": "X86_64",
    }
