"""Pause/resume benchmark: a machine running a small HTTP service (declared port, on-start)
with a 0.5 GB workspace is paused and resumed on its host, then paused again, its host taken
and resumed on a new one from the snapshot. Each is split into the snapshot, the provider's
stop/start (the sim's delay: a start or create → SSH answers), the restore, the service ready
(running → the service answers on its published address) and Dumont's own overhead (the rest:
Temporal round trips, agent install, on-start, records), through the real API, worker,
Temporal dev server, sim and S3 endpoint (`dumont dev`). The two paths print side by side.

Timings come from the machine workflow's history (activity scheduled → completed). Not a test:
it asserts nothing.

    .venv/bin/python bench/pause.py --size-gb 0.5 --boot-delay 2
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
from wake import activity_times, fill_workspace, until_status  # noqa: E402

SERVICE_PORT = 8090
ON_START = f"python3 -m http.server {SERVICE_PORT} --bind 0.0.0.0"


@dataclass
class Timed:
    """One action: request → answer (the API waits for the outcome), and its activities."""

    total: float = 0.0
    service_ready: float = 0.0
    by_activity: dict[str, float] = field(default_factory=dict)

    def part(self, *names: str) -> float:
        return sum(self.by_activity.get(name, 0.0) for name in names)


async def service_answers(address: str, limit: float = 120.0) -> float:
    """Seconds until the service answers HTTP at `address` (host:port)."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() - started < limit:
            try:
                if (await http.get(f"http://{address}/")).status_code < 500:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.02)
    raise SystemExit(f"the service never answered at {address}")


async def act(
    api: httpx.AsyncClient, client: Client, machine_id: str, action: str
) -> tuple[Timed, dict[str, object]]:
    since = datetime.now().astimezone()
    started = time.monotonic()
    answer = (await api.post(f"/api/v1/machines/{machine_id}/{action}")).raise_for_status()
    timed = Timed(total=time.monotonic() - started)
    machine: dict[str, object] = answer.json()
    if action == "resume":
        shown = (await api.get(f"/api/v1/machines/{machine_id}")).raise_for_status().json()
        address = shown["ports"][f"{SERVICE_PORT}/tcp"]
        timed.service_ready = await service_answers(str(address))
    timed.by_activity = await activity_times(client, machine_id, since)
    return timed, machine


async def measure(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Timed]:
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
        body = {
            "gpu_name": "RTX 4090",
            "image": "pytorch/pytorch:latest",
            "disk_gb": 40,
            "ports": [SERVICE_PORT],
            "on_start": ON_START,
        }
        machine = (await api.post("/api/v1/machines", json=body)).raise_for_status().json()
        machine_id = machine["id"]
        running = await until_status(api, machine_id, "running")
        print(f"machine {machine_id} running; writing a {args.size_gb} GB workspace …")
        await fill_workspace(sim, str(running["instance_id"]), args.size_gb)
        await asyncio.to_thread(os.sync)

        timings: dict[str, Timed] = {}
        timings["pause (first snapshot)"], _ = await act(api, client, machine_id, "pause")
        await asyncio.to_thread(os.sync)
        timings["resume, same host"], _ = await act(api, client, machine_id, "resume")
        timings["pause (incremental)"], paused = await act(api, client, machine_id, "pause")
        instance_id = paused["instance_id"]
        (await sim.post(f"/sim/admin/instances/{instance_id}/take-host")).raise_for_status()
        await asyncio.to_thread(os.sync)
        timings["resume, new host"], _ = await act(api, client, machine_id, "resume")
        (await api.delete(f"/api/v1/machines/{machine_id}")).raise_for_status()
    return timings


def report(args: argparse.Namespace, timings: dict[str, Timed]) -> None:
    print(
        f"\nPause and resume of a {args.size_gb} GB workspace with a service "
        f"(sim boot delay {args.boot_delay:.1f} s, {os.cpu_count()} cores)"
    )
    names = list(timings)
    print(f"{'':<44}" + "".join(f"{n:>24}" for n in names))
    t = [timings[n] for n in names]
    overhead = [
        x.total
        - (args.boot_delay if "resume" in n else x.part("stop_instance"))
        - x.part("snapshot_workspace", "restore_workspace")
        for n, x in zip(names, t, strict=True)
    ]
    starts = ("start_instance", "provision_instance", "attach_ssh_keys", "wait_until_ready")
    rows = [
        ("request → answer (API waits for it)", [x.total for x in t]),
        ("  snapshot", [x.part("snapshot_workspace") for x in t]),
        ("  provider stop", [x.part("stop_instance") for x in t]),
        ("  provider start/create → SSH answers", [x.part(*starts) for x in t]),
        ("    of which the sim's boot delay", [args.boot_delay * ("resume" in n) for n in names]),
        ("  restore", [x.part("restore_workspace") for x in t]),
        ("  old instance destroyed", [x.part("destroy_instances") for x in t]),
        ("  agent install", [x.part("install_agent") for x in t]),
        ("  on-start launched", [x.part("run_on_start") for x in t]),
        ("  records (events, projection)", [x.part("record_batch") for x in t]),
        ("service ready after the answer", [x.service_ready for x in t]),
        ("Dumont's overhead (total − provider − data)", overhead),
    ]
    for label, values in rows:
        print(f"{label:<44}" + "".join(f"{v:22.2f} s" for v in values))
    resume_overhead = overhead[names.index("resume, same host")]
    verdict = "met" if resume_overhead <= 1.0 else "MISSED"
    print(f"{'target: resume overhead on its host ≤ 1 s':<44} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=0.5)
    parser.add_argument("--boot-delay", type=float, default=2.0)
    args = parser.parse_args()
    report(args, on_dev("dumont-bench-pause-", lambda env: measure(args, env)))


if __name__ == "__main__":
    main()
