"""GCP benchmark: 10 GCP CPU machines created at once on the local cloud's Compute Engine,
until each answers SSH and runs, side by side with 10 vast.ai machines on the same stack in
the same run, through the real API, worker, Temporal dev server and sim (`dumont dev`).

Prints Dumont's own overhead per machine (create → running minus the sim's boot delay),
p50/p95, for each provider. Not a test: it asserts nothing.

    .venv/bin/python bench/gcp.py --machines 10 --boot-delay 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Run as a script: bench/ is on sys.path.
from lifecycle import GPUS, Timings, delete_all, on_dev, summary, wait_running  # noqa: E402
from timeline import print_where  # noqa: E402

GCP_TYPES = ["e2-micro", "e2-small", "e2-medium", "e2-standard-2"]


def body(provider: str, i: int) -> dict[str, Any]:
    if provider == "gcp":
        return {
            "provider": "gcp",
            "kind": "cpu",
            "machine_type": GCP_TYPES[i % len(GCP_TYPES)],
            "image": "debian-12",
            "disk_gb": 20,
        }
    return {"gpu_name": GPUS[i % len(GPUS)], "image": "ubuntu:22.04", "disk_gb": 20}


async def batch(api: httpx.AsyncClient, provider: str, count: int, where: str | None) -> Timings:
    """`count` machines on `provider` created at once, until all run, then deleted."""
    t = Timings()

    async def create(i: int) -> str:
        response = await api.post("/api/v1/machines", json=body(provider, i))
        response.raise_for_status()
        machine_id = str(response.json()["id"])
        t.created_at[machine_id] = time.monotonic()
        return machine_id

    t.started = time.monotonic()
    ids = list(await asyncio.gather(*(create(i) for i in range(count))))
    t.accepted = time.monotonic()
    await wait_running(api, ids, t)
    t.all_running = time.monotonic()
    if where:
        await print_where(where, ids)
    t.delete_started = time.monotonic()
    await delete_all(api, ids, t)
    t.all_deleted = time.monotonic()
    return t


async def measure(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Timings]:
    admin = {"X-Admin-Token": env["DUMONT_SIM_ADMIN_TOKEN"]}
    async with httpx.AsyncClient(base_url=env["VAST_URL"], headers=admin) as sim:
        delay = await sim.put("/sim/admin/boot-delay", json={"seconds": args.boot_delay})
        delay.raise_for_status()
    headers = {"Authorization": f"Bearer {env['DUMONT_TOKEN']}"}
    limits = httpx.Limits(max_connections=args.machines + 10)
    where = env["TEMPORAL_ADDRESS"] if args.where else None
    results: dict[str, Timings] = {}
    async with httpx.AsyncClient(
        base_url=env["DUMONT_API_URL"], headers=headers, timeout=300, limits=limits
    ) as api:
        for provider in ("vast", "gcp"):  # one after the other: each has the stack to itself
            results[provider] = await batch(api, provider, args.machines, where)
    return results


def report(args: argparse.Namespace, results: dict[str, Timings]) -> None:
    print(
        f"\n{args.machines} machines per provider created at once "
        f"(sim boot delay {args.boot_delay:.1f} s, {os.cpu_count()} cores)"
    )
    for provider, t in results.items():
        ids = list(t.created_at)
        to_running = [t.running_at[m] - t.created_at[m] for m in ids]
        print(f"\n{provider}:")
        print(f"{'all running':<34} {t.all_running - t.started:6.2f} s")
        print(summary("create → running (SSH answers)", to_running))
        print(summary("Dumont's own overhead", [v - args.boot_delay for v in to_running]))
        print(
            summary("delete request → destroyed", [t.deleted_at[m] - t.delete_started for m in ids])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--boot-delay", type=float, default=2.0)
    parser.add_argument(
        "--where", action="store_true", help="also print where the time goes, per activity"
    )
    args = parser.parse_args()
    report(args, on_dev("dumont-bench-gcp-", lambda env: measure(args, env)))


if __name__ == "__main__":
    main()
