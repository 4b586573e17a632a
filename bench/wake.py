"""Wake benchmark: hibernate a machine holding a mixed workspace, wake it, and split the wake
time into provisioning (the sim's boot delay: create → SSH answers), restore, agent install and
Dumont's own overhead (everything else: Temporal round trips, activity scheduling, records),
through the real API, worker, Temporal dev server, sim and S3 endpoint (`dumont dev`).

Timings come from the machine workflow's history (activity scheduled → completed), so each
part is measured where it happened. Not a test: it asserts nothing.

    .venv/bin/python bench/wake.py --size-gb 0.5 --boot-delay 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from temporalio.client import Client

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Run as a script: bench/ is on sys.path, and the repository for the modules these import.
from lifecycle import on_dev  # noqa: E402
from snapshot import generate  # noqa: E402
from timeline import activity_spans  # noqa: E402


@dataclass
class Split:
    total: float = 0.0
    http: float = 0.0
    by_activity: dict[str, float] = field(default_factory=dict)

    def part(self, *names: str) -> float:
        return sum(self.by_activity.get(name, 0.0) for name in names)


async def activity_times(client: Client, machine_id: str, since: datetime) -> dict[str, float]:
    """Seconds spent in each activity (scheduled → closed, retries included) after `since`."""
    spent: dict[str, float] = {}
    for name, wait, run in await activity_spans(client, machine_id, since):
        spent[name] = spent.get(name, 0.0) + wait + run
    return spent


async def fill_workspace(sim: httpx.AsyncClient, instance_id: str, size_gb: float) -> None:
    info = (await sim.get(f"/sim/admin/instances/{instance_id}")).raise_for_status().json()
    target = Path(info["workspace_path"]) / "project"
    await asyncio.to_thread(generate, target, size_gb)


async def until_status(api: httpx.AsyncClient, machine_id: str, wanted: str) -> dict[str, object]:
    for _ in range(1200):
        machine: dict[str, object] = (
            (await api.get(f"/api/v1/machines/{machine_id}")).raise_for_status().json()
        )
        if machine["status"] == wanted:
            return machine
        await asyncio.sleep(0.25)
    raise SystemExit(f"machine {machine_id} never became {wanted}")


async def measure(args: argparse.Namespace, env: dict[str, str]) -> Split:
    admin = {"X-Admin-Token": env["DUMONT_SIM_ADMIN_TOKEN"]}
    headers = {"Authorization": f"Bearer {env['DUMONT_TOKEN']}"}
    client = await Client.connect(env["TEMPORAL_ADDRESS"])
    async with (
        httpx.AsyncClient(base_url=env["VAST_URL"], headers=admin, timeout=60) as sim,
        httpx.AsyncClient(base_url=env["DUMONT_API_URL"], headers=headers, timeout=900) as api,
    ):
        (
            await sim.put("/sim/admin/boot-delay", json={"seconds": args.boot_delay})
        ).raise_for_status()
        body = {"gpu_name": "RTX 4090", "image": "pytorch/pytorch:latest", "disk_gb": 40}
        machine = (await api.post("/api/v1/machines", json=body)).raise_for_status().json()
        machine_id = machine["id"]
        running = await until_status(api, machine_id, "running")
        print(f"machine {machine_id} running; writing a {args.size_gb} GB workspace …")
        await fill_workspace(sim, str(running["instance_id"]), args.size_gb)

        started = time.monotonic()
        hibernated = (await api.post(f"/api/instances/{machine_id}/hibernate")).raise_for_status()
        print(f"hibernated in {time.monotonic() - started:.1f} s: {hibernated.json()}")

        # As bench/snapshot.py does before each timing: the restore must not pay for the
        # writeback of the generated workspace and the hibernation's uploads.
        await asyncio.to_thread(os.sync)
        since = datetime.now().astimezone()
        started = time.monotonic()
        woke = (await api.post(f"/api/instances/{machine_id}/wake", json={})).raise_for_status()
        http = time.monotonic() - started
        answer = woke.json()
        split = Split(total=float(answer["time_taken"]), http=http)
        split.by_activity = await activity_times(client, machine_id, since)
        (await api.delete(f"/api/v1/machines/{machine_id}")).raise_for_status()
    return split


def report(args: argparse.Namespace, split: Split) -> None:
    provisioning = split.part("provision_instance", "attach_ssh_keys", "wait_until_ready")
    restore = split.part("restore_workspace")
    agent = split.part("install_agent")
    overhead = split.total - args.boot_delay - restore
    print(
        f"\nWake of a {args.size_gb} GB workspace (sim boot delay {args.boot_delay:.1f} s, "
        f"{os.cpu_count()} cores)"
    )
    rows = [
        ("wake, request → running (workflow)", split.total),
        ("wake, HTTP round trip", split.http),
        ("  provisioning: create → SSH answers", provisioning),
        ("    of which the sim's boot delay", args.boot_delay),
        ("  restore (download, verify, write)", restore),
        ("  agent install", agent),
        ("  records (events, projection)", split.part("record_state", "record_instance")),
        ("Dumont's overhead (total − boot delay − restore)", overhead),
    ]
    for label, seconds in rows:
        print(f"{label:<52} {seconds:7.2f} s")
    verdict = "met" if overhead <= 2.0 else "MISSED"
    print(f"{'target: overhead ≤ 2 s':<52} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=0.5)
    parser.add_argument("--boot-delay", type=float, default=2.0)
    args = parser.parse_args()
    report(args, on_dev("dumont-bench-wake-", lambda env: measure(args, env)))


if __name__ == "__main__":
    main()
