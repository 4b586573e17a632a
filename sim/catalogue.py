"""The offer catalogue: a few hundred machines, the same ones for the same seed.

Prices, memory sizes and hosts follow what vast.ai lists for each GPU model. An offer's static
facts live in `OfferSpec`; `offer_json` prices it for a search (storage and on-demand/bid).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

HOURS_PER_MONTH = 720.0


@dataclass(frozen=True)
class GpuModel:
    name: str
    ram_mb: int
    price_per_gpu: tuple[float, float]  # on-demand $/h, low..high
    compute_cap: int
    tflops: float
    dlperf: float
    counts: tuple[int, ...]
    weight: int  # how common the model is on the market
    cpu_names: tuple[str, ...]
    datacenter_share: float


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel(
        "RTX 5090",
        32607,
        (0.55, 0.95),
        1200,
        104.8,
        96.0,
        (1, 2, 4, 8),
        9,
        ("AMD Ryzen 9 9950X", "AMD EPYC 9354 32-Core Processor"),
        0.3,
    ),
    GpuModel(
        "RTX 4090",
        24564,
        (0.28, 0.55),
        890,
        82.6,
        70.0,
        (1, 2, 4, 8),
        14,
        ("AMD Ryzen 9 7950X", "AMD EPYC 7763 64-Core Processor", "Intel Core i9-13900K"),
        0.3,
    ),
    GpuModel(
        "RTX 3090",
        24576,
        (0.13, 0.30),
        860,
        35.6,
        32.0,
        (1, 2, 4, 8),
        12,
        ("AMD Ryzen 9 5950X", "AMD EPYC 7302 16-Core Processor", "Intel Xeon E5-2680 v4"),
        0.2,
    ),
    GpuModel(
        "RTX 2080",
        8192,
        (0.06, 0.15),
        750,
        10.1,
        11.0,
        (1, 2, 4),
        5,
        ("Intel Core i7-9700K", "AMD Ryzen 7 3700X"),
        0.05,
    ),
    GpuModel(
        "GTX 1080 Ti",
        11264,
        (0.05, 0.12),
        610,
        11.3,
        9.0,
        (1, 2, 4, 8),
        5,
        ("Intel Xeon E5-2650 v2", "Intel Core i7-7700K"),
        0.05,
    ),
    GpuModel(
        "GTX 1080",
        8192,
        (0.04, 0.09),
        610,
        8.9,
        7.0,
        (1, 2, 4),
        4,
        ("Intel Core i7-6700K", "Intel Xeon E5-2620 v3"),
        0.05,
    ),
    GpuModel(
        "Quadro P2000",
        5120,
        (0.03, 0.07),
        610,
        3.0,
        2.5,
        (1, 2),
        2,
        ("Intel Xeon E3-1245 v6",),
        0.1,
    ),
    GpuModel(
        "A100 SXM4",
        81920,
        (0.70, 1.40),
        800,
        19.5,
        140.0,
        (1, 2, 4, 8),
        6,
        ("AMD EPYC 7742 64-Core Processor", "AMD EPYC 7J13 64-Core Processor"),
        0.9,
    ),
    GpuModel(
        "A100 PCIE",
        40960,
        (0.60, 1.20),
        800,
        19.5,
        110.0,
        (1, 2, 4, 8),
        4,
        ("AMD EPYC 7543 32-Core Processor", "Intel Xeon Gold 6338"),
        0.8,
    ),
    GpuModel(
        "H100 SXM",
        81559,
        (1.70, 2.80),
        900,
        66.9,
        260.0,
        (1, 2, 4, 8),
        6,
        ("Intel Xeon Platinum 8480+", "AMD EPYC 9654 96-Core Processor"),
        1.0,
    ),
    GpuModel(
        "H100 PCIE",
        81559,
        (1.50, 2.40),
        900,
        51.2,
        210.0,
        (1, 2, 4, 8),
        4,
        ("AMD EPYC 9454 48-Core Processor", "Intel Xeon Platinum 8462Y+"),
        0.9,
    ),
)

# (location, weight): "City, CC" as vast.ai shows it; the last two letters are the country.
LOCATIONS: tuple[tuple[str, int], ...] = (
    ("California, US", 8),
    ("Texas, US", 7),
    ("Virginia, US", 5),
    ("New York, US", 4),
    ("Oregon, US", 3),
    ("Quebec, CA", 4),
    ("Ontario, CA", 2),
    ("Frankfurt, DE", 5),
    ("Berlin, DE", 2),
    ("Amsterdam, NL", 4),
    ("Stockholm, SE", 3),
    ("Oslo, NO", 2),
    ("Helsinki, FI", 2),
    ("Paris, FR", 2),
    ("London, GB", 3),
    ("Warsaw, PL", 2),
    ("Prague, CZ", 1),
    ("Sao Paulo, BR", 3),
    ("Santiago, CL", 1),
    ("Tokyo, JP", 3),
    ("Seoul, KR", 2),
    ("Singapore, SG", 3),
    ("Taipei, TW", 1),
    ("Mumbai, IN", 1),
    ("Sydney, AU", 2),
    ("Auckland, NZ", 1),
    ("Johannesburg, ZA", 1),
)

DRIVERS: tuple[tuple[str, float], ...] = (
    ("535.183.01", 12.2),
    ("550.127.05", 12.4),
    ("560.35.03", 12.6),
    ("570.124.06", 12.8),
)


@dataclass(frozen=True)
class OfferSpec:
    """What does not change between searches: the machine and its list prices."""

    id: int
    fields: dict[str, Any]

    @property
    def dph_base(self) -> float:
        return float(self.fields["dph_base"])

    @property
    def min_bid(self) -> float:
        return float(self.fields["min_bid"])

    @property
    def storage_cost(self) -> float:
        return float(self.fields["storage_cost"])


def storage_per_hour(storage_cost_per_month: float, disk_gb: float) -> float:
    return storage_cost_per_month * disk_gb / HOURS_PER_MONTH


def _weighted(rng: random.Random, items: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([item for item, _ in items], weights=[w for _, w in items])[0]


def _driver_int(version: str) -> int:
    major, minor, patch = (part.zfill(3) for part in version.split("."))
    return int(major + minor + patch)


def _machine_fields(rng: random.Random, model: GpuModel, num_gpus: int) -> dict[str, Any]:
    geolocation = _weighted(rng, LOCATIONS)
    datacenter = rng.random() < model.datacenter_share
    per_gpu = rng.uniform(*model.price_per_gpu)
    dph_base = round(per_gpu * num_gpus, 4)
    reliability = round(rng.uniform(0.80, 0.9995), 4)
    cpu_cores = num_gpus * rng.choice((4, 8, 12, 16)) if num_gpus < 8 else rng.choice((64, 96, 128))
    cpu_ram = num_gpus * rng.choice((16, 32, 64, 128)) * 1024
    disk_space = float(rng.choice((100, 200, 500, 1000, 2000, 4000)) * max(1, num_gpus // 2))
    driver, cuda = rng.choice(DRIVERS)
    inet_down = float(rng.choice((100, 500, 1000, 2500, 5000, 10000)) + rng.randint(-40, 40))
    inet_up = round(inet_down * rng.uniform(0.3, 1.0), 1)
    dlperf = round(model.dlperf * num_gpus * rng.uniform(0.85, 1.05), 3)
    total_flops = round(model.tflops * num_gpus, 3)
    return {
        "geolocation": geolocation,
        "hosting_type": 1 if datacenter else 0,
        "dph_base": dph_base,
        # Interruptible floor: hosts usually accept 30-60% of the on-demand price.
        "min_bid": round(dph_base * rng.uniform(0.3, 0.6), 4),
        "storage_cost": round(rng.uniform(0.08, 0.3), 4),
        "reliability": reliability,
        "cpu_cores": cpu_cores,
        "cpu_ram": cpu_ram,
        "disk_space": disk_space,
        "driver_version": driver,
        "driver_vers": _driver_int(driver),
        "cuda_max_good": cuda,
        "inet_down": inet_down,
        "inet_up": inet_up,
        "dlperf": dlperf,
        "total_flops": total_flops,
        "cpu_name": rng.choice(model.cpu_names),
    }


def build_catalogue(seed: int, count: int) -> dict[int, OfferSpec]:
    """The whole market for `seed`: offer id -> spec, in a stable order."""
    rng = random.Random(seed)
    models = tuple((model, model.weight) for model in GPU_MODELS)
    catalogue: dict[int, OfferSpec] = {}
    offer_id = 5_000_000 + rng.randint(0, 999_999)
    machine_id = 10_000 + rng.randint(0, 9_999)
    host_id = 100_000 + rng.randint(0, 99_999)
    while len(catalogue) < count:
        model: GpuModel = _weighted(rng, models)
        num_gpus = rng.choices(model.counts, weights=[8, 4, 2, 1][: len(model.counts)])[0]
        machine_id += rng.randint(1, 40)
        host_id += rng.randint(1, 300)
        offer_id += rng.randint(1, 5_000)
        catalogue[offer_id] = OfferSpec(
            offer_id, _spec_fields(rng, model, num_gpus, offer_id, machine_id, host_id)
        )
    return catalogue


def _spec_fields(
    rng: random.Random, model: GpuModel, num_gpus: int, offer_id: int, machine_id: int, host_id: int
) -> dict[str, Any]:
    machine = _machine_fields(rng, model, num_gpus)
    verified = rng.random() < 0.9
    reliability = machine["reliability"]
    duration = float(rng.randint(7, 180) * 86400)
    ip = f"{rng.randint(23, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return {
        "id": offer_id,
        "ask_contract_id": offer_id,
        "bundle_id": offer_id + 1_000_000_000,
        "bundled_results": 0,
        "machine_id": machine_id,
        "host_id": host_id,
        "num_gpus": num_gpus,
        "gpu_name": model.name,
        "gpu_ram": model.ram_mb,
        "gpu_total_ram": model.ram_mb * num_gpus,
        "gpu_totalram": model.ram_mb * num_gpus,
        "gpu_frac": 1.0,
        "gpu_arch": "nvidia",
        "gpu_display_active": False,
        "gpu_lanes": 16,
        "gpu_mem_bw": round(model.tflops * 12.0, 1),
        "bw_nvlink": 600.0 if model.name.endswith("SXM") or model.name.endswith("SXM4") else 0.0,
        "compute_cap": model.compute_cap,
        "cuda_max_good": machine["cuda_max_good"],
        "driver_version": machine["driver_version"],
        "driver_vers": machine["driver_vers"],
        "cpu_name": machine["cpu_name"],
        "cpu_arch": "amd64",
        "cpu_cores": machine["cpu_cores"],
        "cpu_cores_effective": float(machine["cpu_cores"]),
        "cpu_ram": machine["cpu_ram"],
        "has_avx": 1,
        "disk_space": machine["disk_space"],
        "disk_bw": float(rng.choice((800, 1500, 3000, 6000))),
        "disk_name": rng.choice(
            ("Samsung SSD 980 PRO 2TB", "WD_BLACK SN850X", "INTEL SSDPE2KX040T8")
        ),
        "inet_up": machine["inet_up"],
        "inet_down": machine["inet_down"],
        "inet_up_cost": round(rng.uniform(0.0, 0.02), 4),
        "inet_down_cost": round(rng.uniform(0.0, 0.02), 4),
        "direct_port_count": rng.choice((0, 20, 50, 100, 500)),
        "dph_base": machine["dph_base"],
        "min_bid": machine["min_bid"],
        "storage_cost": machine["storage_cost"],
        "reliability": reliability,
        "reliability2": reliability,
        "reliability_mult": round(reliability**2, 4),
        "expected_reliability": reliability,
        "dlperf": machine["dlperf"],
        "total_flops": machine["total_flops"],
        "geolocation": machine["geolocation"],
        "geolocode": sum(machine["geolocation"][-2:].encode()),
        "hosting_type": machine["hosting_type"],
        "verification": "verified" if verified else "unverified",
        "vericode": 1 if verified else 0,
        "verified": verified,
        "rentable": True,
        "rented": False,
        "external": False,
        "static_ip": rng.random() < 0.5,
        "vms_enabled": False,
        "public_ipaddr": ip,
        "hostname": None,
        "duration": duration,
        "pci_gen": float(rng.choice((3, 4, 5))),
        "pcie_bw": round(rng.uniform(10.0, 50.0), 1),
        "mobo_name": rng.choice(
            ("ROMED8-2T", "X570 AORUS MASTER", "H12SSL-i", "PRO WS WRX80E-SAGE")
        ),
        "os_version": rng.choice(("20.04", "22.04", "24.04")),
        "resource_type": "gpu",
        "cluster_id": None,
        "credit_discount_max": 0.0,
        "discount_rate": 0.0,
    }


def offer_json(spec: OfferSpec, *, storage_gb: float, bid: bool, now: float) -> dict[str, Any]:
    """The offer as search returns it, priced for `storage_gb` of disk.

    dph_total = dph_base (or min_bid for interruptible) + storage_cost x storage / 720.
    """
    fields = dict(spec.fields)
    gpu_hour = spec.min_bid if bid else spec.dph_base
    disk_hour = storage_per_hour(spec.storage_cost, storage_gb)
    dph_total = round(gpu_hour + disk_hour, 6)
    fields.update(
        dph_total=dph_total,
        dph_total_adj=dph_total,
        discounted_dph_total=dph_total,
        storage_total_cost=round(disk_hour, 6),
        is_bid=bid,
        dlperf_per_dphtotal=round(fields["dlperf"] / dph_total, 3),
        flops_per_dphtotal=round(fields["total_flops"] / dph_total, 3),
        # vast's score rewards performance per dollar and reliability.
        score=round(fields["dlperf"] / dph_total * fields["reliability"] ** 2, 3),
        start_date=now,
        end_date=now + fields["duration"],
        time_remaining="",
        time_remaining_isbid="",
        internet_up_cost_per_tb=round(fields["inet_up_cost"] * 1000, 2),
        internet_down_cost_per_tb=round(fields["inet_down_cost"] * 1000, 2),
        search=_cost_breakdown(gpu_hour, disk_hour),
        instance=_cost_breakdown(gpu_hour, disk_hour),
    )
    return fields


def _cost_breakdown(gpu_hour: float, disk_hour: float) -> dict[str, float]:
    total = round(gpu_hour + disk_hour, 6)
    return {
        "gpuCostPerHour": round(gpu_hour, 6),
        "diskHour": round(disk_hour, 6),
        "totalHour": total,
        "discountTotalHour": 0.0,
        "discountedTotalPerHour": total,
    }
