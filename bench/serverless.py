"""Serverless benchmark, on a fresh `dumont dev` (real API with its gateway, worker, Temporal dev
server, sim, S3): a sim machine runs a small ASGI service (bench/serverless_service.py) on a
declared port, in serverless mode.

- Cold start: a request to the paused machine → its first byte, split into the provider's
  start (the sim's boot delay), the service's own start-up (the same command timed alone, in
  the same run) and Dumont's overhead (the rest); the same for the fallback path (its host
  taken while paused: a new host and the restore of a 0.5 GB workspace).
- Warm path: the service directly, through nginx, and through the gateway, under wrk at an
  offered 500 req/s and at saturation; the first byte of a streamed response through each.
- Burst from zero: 100 requests within one second at the paused machine.

The sim's machines run on the host network here (DUMONT_SIM_NETWORK=host), so "direct" is plain
loopback: the sim's per-machine network (pasta) adds ~16 ms at p50 under load, which would
hide the gateway's own cost. `--network netns` measures through it instead.

Not a test: it asserts nothing.

    .venv/bin/python bench/serverless.py --boot-delay 2 --size-gb 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Run as a script: bench/ is on sys.path, and the repository for the modules these import.
from lifecycle import free_port, on_dev  # noqa: E402
from serverless_warm import WrkResult, warm_path  # noqa: E402
from wake import activity_times, fill_workspace, until_status  # noqa: E402

SERVICE_PORT = 8091
SERVE = (
    f"{sys.executable} -m uvicorn serverless_service:app --app-dir {REPO / 'bench'} "
    "--host 0.0.0.0 --port {port} --log-level warning --no-access-log"
)


@dataclass
class ColdStart:
    total_ms: float
    status: int
    resume_header_ms: float | None
    restore_s: float = 0.0


@dataclass
class Burst:
    answered: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    slowest_s: float = 0.0
    peak_outstanding: int = 0


def service_startup_seconds() -> float:
    """The service's own start-up: its command started here until it answers."""
    port = free_port()
    process = subprocess.Popen(SERVE.format(port=port).split(), cwd=REPO)
    started = time.monotonic()
    try:
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                return time.monotonic() - started
            except httpx.HTTPError:
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait()


async def cold_start(
    api: httpx.AsyncClient, url: str, key: dict[str, str], machine_id: str
) -> ColdStart:
    (await api.post(f"/api/v1/serverless/pause/{machine_id}")).raise_for_status()
    async with httpx.AsyncClient(timeout=900, headers=key) as http:
        started = time.perf_counter()
        async with http.stream("GET", url) as response:
            async for _chunk in response.aiter_raw():
                break
            elapsed = (time.perf_counter() - started) * 1000
            header = response.headers.get("x-dumont-resume-ms")
    return ColdStart(elapsed, response.status_code, float(header) if header else None)


async def burst(
    api: httpx.AsyncClient, url: str, key: dict[str, str], machine_id: str, count: int
) -> Burst:
    (await api.post(f"/api/v1/serverless/pause/{machine_id}")).raise_for_status()
    result = Burst()
    outstanding = 0
    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(timeout=900, headers=key, limits=limits) as http:

        async def one(n: int) -> None:
            nonlocal outstanding
            await asyncio.sleep(n / count)  # spread over one second
            outstanding += 1
            result.peak_outstanding = max(result.peak_outstanding, outstanding)
            started = time.monotonic()
            try:
                status = (await http.get(url)).status_code
            except httpx.HTTPError:
                status = 0
            outstanding -= 1
            result.slowest_s = max(result.slowest_s, time.monotonic() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.answered += status == 200

        await asyncio.gather(*(one(n) for n in range(count)))
    return result


async def measure(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    admin = {"X-Admin-Token": env["DUMONT_SIM_ADMIN_TOKEN"]}
    headers = {"Authorization": f"Bearer {env['DUMONT_TOKEN']}"}
    client = await Client.connect(env["TEMPORAL_ADDRESS"])
    async with (
        httpx.AsyncClient(base_url=env["VAST_URL"], headers=admin, timeout=60) as sim,
        httpx.AsyncClient(base_url=env["DUMONT_API_URL"], headers=headers, timeout=900) as api,
    ):
        delay = {"seconds": args.boot_delay}
        (await sim.put("/sim/admin/boot-delay", json=delay)).raise_for_status()
        body = {
            "gpu_name": "RTX 4090",
            "image": "pytorch/pytorch:latest",
            "disk_gb": 40,
            "ports": [SERVICE_PORT],
            "on_start": "exec " + SERVE.format(port=SERVICE_PORT),
        }
        machine = (await api.post("/api/v1/machines", json=body)).raise_for_status().json()
        machine_id = machine["id"]
        running = await until_status(api, machine_id, "running")
        enable = {"instance_id": machine_id, "idle_timeout_minutes": 60, "port": SERVICE_PORT}
        enabled = (await api.post("/api/v1/serverless/enable", json=enable)).raise_for_status()
        gateway_url, key = enabled.json()["gateway_url"], enabled.json()["endpoint_key"]
        key_header = {"X-Dumont-Key": key}
        direct = str(running["ports"][f"{SERVICE_PORT}/tcp"])  # type: ignore[index]
        print(f"machine {machine_id} running, gateway {gateway_url}")
        out: dict[str, Any] = {"machine_id": machine_id}
        out["warm"] = await warm_path(
            direct, gateway_url, key_header, rate=args.rate, seconds=args.seconds
        )
        out["same_host"] = [
            await cold_start(api, gateway_url, key_header, machine_id) for _ in range(args.repeats)
        ]
        out["burst"] = await burst(api, gateway_url, key_header, machine_id, args.burst)

        print(f"writing a {args.size_gb} GB workspace …")
        await fill_workspace(sim, str(running["instance_id"]), args.size_gb)
        await asyncio.to_thread(os.sync)
        (await api.post(f"/api/v1/serverless/pause/{machine_id}")).raise_for_status()
        paused = (await api.get(f"/api/v1/machines/{machine_id}")).raise_for_status().json()
        instance_id = paused["instance_id"]
        (await sim.post(f"/sim/admin/instances/{instance_id}/take-host")).raise_for_status()
        since = datetime.now().astimezone()
        async with httpx.AsyncClient(timeout=900, headers=key_header) as http:
            started = time.perf_counter()
            answer = await http.get(gateway_url)
            fallback = ColdStart(
                (time.perf_counter() - started) * 1000,
                answer.status_code,
                float(answer.headers.get("x-dumont-resume-ms", 0)),
            )
        fallback.restore_s = (await activity_times(client, machine_id, since)).get(
            "restore_workspace", 0.0
        )
        out["new_host"] = fallback
        (await api.delete(f"/api/v1/machines/{machine_id}")).raise_for_status()
    return out


def _row(name: str, values: list[str], width: int = 18) -> str:
    return f"{name:<46}" + "".join(f"{v:>{width}}" for v in values)


def report(args: argparse.Namespace, out: dict[str, Any], startup: float) -> None:
    cores = os.cpu_count()
    print(
        f"\nServerless gateway (sim boot delay {args.boot_delay:.1f} s, {cores} cores, "
        f"machines on the {args.network} network)"
    )
    same: list[ColdStart] = out["same_host"]
    new: ColdStart = out["new_host"]
    same_ms = statistics.median(c.total_ms for c in same)
    boot_ms, startup_ms = args.boot_delay * 1000, startup * 1000
    print(
        "\nCold start: request to a paused machine → first byte (median of "
        f"{len(same)} same-host runs)"
    )
    print(_row("", ["same host", "new host"]))
    print(_row("request → first byte", [f"{same_ms:.0f} ms", f"{new.total_ms:.0f} ms"]))
    print(_row("  provider start (the sim's delay)", [f"{boot_ms:.0f} ms"] * 2))
    print(_row("  restore of the workspace", ["—", f"{new.restore_s * 1000:.0f} ms"]))
    print(_row("  service start-up (same command alone)", [f"{startup_ms:.0f} ms"] * 2))
    own_same = same_ms - boot_ms - startup_ms
    own_new = new.total_ms - boot_ms - startup_ms - new.restore_s * 1000
    print(
        _row("  Dumont's own overhead (target ≤ 1 s)", [f"{own_same:.0f} ms", f"{own_new:.0f} ms"])
    )
    said = [f"{c.resume_header_ms:.0f} ms" if c.resume_header_ms else "—" for c in (same[0], new)]
    print(_row("  X-Dumont-Resume-Ms (the gateway's own count)", said))
    print(f"  statuses: {[c.status for c in same]} (same host), {new.status} (new host)")

    warm: dict[str, dict[str, Any]] = out["warm"]
    print(
        f"\nWarm path ({args.seconds} s per run; wrk paced to ~{args.rate} req/s with 10 "
        "connections, saturation with 32)"
    )
    names = list(warm)
    print(_row("", names))
    for label, key in ((f"offered ~{args.rate} req/s", "paced"), ("saturation", "saturation")):
        runs: list[WrkResult] = [warm[n][key] for n in names]
        print(_row(f"{label}: req/s", [f"{r.requests_per_second:.0f}" for r in runs]))
        print(_row("  p50", [f"{r.p50_ms:.2f} ms" for r in runs]))
        print(_row("  p99", [f"{r.p99_ms:.2f} ms" for r in runs]))
        print(_row("  errors", [str(r.errors) for r in runs]))
    print(
        _row(
            "streamed response: first byte (median)",
            [f"{warm[n]['stream_first_byte_ms']:.2f} ms" for n in names],
        )
    )
    direct, gateway = warm["direct"]["paced"], warm["dumont gateway"]["paced"]
    print(
        f"  gateway over direct at ~{args.rate} req/s: "
        f"p50 +{gateway.p50_ms - direct.p50_ms:.2f} ms "
        f"(target ≤ 2), p99 +{gateway.p99_ms - direct.p99_ms:.2f} ms (target ≤ 10), "
        f"errors {gateway.errors}"
    )

    b: Burst = out["burst"]
    print(f"\nBurst from zero: {args.burst} requests within one second at the paused machine")
    print(f"  answered 200: {b.answered}/{args.burst}   statuses {b.statuses}")
    print(f"  queue peak (requests outstanding at once): {b.peak_outstanding}")
    print(f"  slowest answer: {b.slowest_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boot-delay", type=float, default=2.0)
    parser.add_argument("--size-gb", type=float, default=0.5)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--network", choices=("host", "netns"), default="host")
    args = parser.parse_args()
    os.environ["DUMONT_SIM_NETWORK"] = args.network  # `dumont dev` passes it to the sim
    startup = service_startup_seconds()
    out = on_dev("bench-serverless-", lambda env: measure(args, env))
    report(args, out, startup)


if __name__ == "__main__":
    main()
