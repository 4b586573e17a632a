"""Lifecycle benchmark: N machines created at once on the local cloud, until all run and until
all are deleted, through the real API, worker, Temporal dev server and sim (`dumont dev`).

Prints the orchestration overhead per machine (time to running minus the sim's boot delay),
p50/p95, and the worker's and API's peak memory. Not a test: it asserts nothing.

    .venv/bin/python bench/lifecycle.py --machines 50 --boot-delay 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# Run as a script: bench/ is on sys.path, and the repository for the modules it imports.
from timeline import print_where  # noqa: E402

GPUS = ["RTX 4090", "RTX 3090", "RTX 2080", "GTX 1080 Ti", "RTX 5090", "A100 SXM4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'\"")
    return env


def peak_rss_mib(data_dir: Path, marker: str) -> float | None:
    """VmHWM of the stack's process whose command line contains `marker`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline and str(data_dir).encode() in environ:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Timings:
    started: float = 0.0
    accepted: float = 0.0
    all_running: float = 0.0
    delete_started: float = 0.0
    all_deleted: float = 0.0
    created_at: dict[str, float] = field(default_factory=dict)
    running_at: dict[str, float] = field(default_factory=dict)
    deleted_at: dict[str, float] = field(default_factory=dict)


async def create_all(api: httpx.AsyncClient, count: int, t: Timings) -> list[str]:
    async def one(i: int) -> str:
        body = {"gpu_name": GPUS[i % len(GPUS)], "image": "ubuntu:22.04", "disk_gb": 20}
        response = await api.post("/api/v1/machines", json=body)
        response.raise_for_status()
        machine_id = str(response.json()["id"])
        t.created_at[machine_id] = time.monotonic()
        return machine_id

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def wait_running(api: httpx.AsyncClient, ids: list[str], t: Timings) -> None:
    pending = set(ids)
    while pending:
        machines = (await api.get("/api/v1/machines")).json()
        now = time.monotonic()
        for machine in machines:
            if machine["id"] in pending and machine["status"] in ("running", "error"):
                if machine["status"] == "error":
                    print(f"  {machine['id']} error: {machine['status_reason']}")
                t.running_at[machine["id"]] = now
                pending.discard(machine["id"])
        await asyncio.sleep(0.1)


async def delete_all(api: httpx.AsyncClient, ids: list[str], t: Timings) -> None:
    async def one(machine_id: str) -> None:
        response = await api.delete(f"/api/v1/machines/{machine_id}")
        response.raise_for_status()
        t.deleted_at[machine_id] = time.monotonic()

    await asyncio.gather(*(one(m) for m in ids))


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} p50 {statistics.median(values):6.2f} s   p95 {percentile(values, 0.95):6.2f} s"
        f"   max {max(values):6.2f} s"
    )


T = TypeVar("T")


def start_dev(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`dumont dev` on free ports; its process and the `dev.env` it wrote."""
    ports = {
        name: free_port()
        for name in (
            "api-port",
            "temporal-port",
            "temporal-ui-port",
            "s3-port",
            "sim-port",
            "sim-gce-port",
        )
    }
    options = [f"--{name}={port}" for name, port in ports.items()]
    log_path = data_dir / "bench-dev.log"
    with log_path.open("w") as log:
        dev = subprocess.Popen(
            [sys.executable, "-m", "dumont", "dev", "--data-dir", str(data_dir), *options],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    env_file = data_dir / "dev.env"
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if dev.poll() is not None or time.monotonic() > deadline:
            dev.kill()
            raise SystemExit("dumont dev did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.2)
    return dev, read_env(env_file)


def on_dev(prefix: str, work: Callable[[dict[str, str]], Coroutine[Any, Any, T]]) -> T:
    """Run `work` against a fresh `dumont dev` (in a temporary data dir), then stop it."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        dev, env = start_dev(Path(tmp))
        try:
            return asyncio.run(work(env))
        finally:
            dev.send_signal(signal.SIGINT)
            dev.wait(timeout=60)


async def measure(args: argparse.Namespace, env: dict[str, str]) -> tuple[Timings, list[str]]:
    admin = {"X-Admin-Token": env["DUMONT_SIM_ADMIN_TOKEN"]}
    async with httpx.AsyncClient(base_url=env["VAST_URL"], headers=admin) as sim:
        delay = await sim.put("/sim/admin/boot-delay", json={"seconds": args.boot_delay})
        delay.raise_for_status()
    headers = {"Authorization": f"Bearer {env['DUMONT_TOKEN']}"}
    limits = httpx.Limits(max_connections=args.machines + 10)
    async with httpx.AsyncClient(
        base_url=env["DUMONT_API_URL"], headers=headers, timeout=300, limits=limits
    ) as api:
        t = Timings()
        t.started = time.monotonic()
        ids = await create_all(api, args.machines, t)
        t.accepted = time.monotonic()
        await wait_running(api, ids, t)
        t.all_running = time.monotonic()
        if args.where:
            await print_where(env["TEMPORAL_ADDRESS"], ids)
        t.delete_started = time.monotonic()
        await delete_all(api, ids, t)
        t.all_deleted = time.monotonic()
    return t, ids


def report(args: argparse.Namespace, data_dir: Path, t: Timings, ids: list[str]) -> None:
    to_running = [t.running_at[m] - t.created_at[m] for m in ids]
    overhead = [v - args.boot_delay for v in to_running]
    to_deleted = [t.deleted_at[m] - t.delete_started for m in ids]
    print(
        f"\nLifecycle of {args.machines} machines created at once "
        f"(sim boot delay {args.boot_delay:.1f} s, {os.cpu_count()} cores)"
    )
    print(f"{'all create requests answered':<34} {t.accepted - t.started:6.2f} s")
    print(f"{'all running':<34} {t.all_running - t.started:6.2f} s")
    print(f"{'all deleted':<34} {t.all_deleted - t.delete_started:6.2f} s")
    print(summary("create → running, per machine", to_running))
    print(summary("orchestration overhead", overhead))
    print(summary("delete request → destroyed", to_deleted))
    for name, marker in (("worker", "-m worker"), ("API", "api.app:create_app")):
        rss = peak_rss_mib(data_dir, marker)
        label = f"peak memory, {name}"
        print(f"{label:<34} {rss:6.0f} MiB" if rss else f"{label:<34} (process not found)")


def run(args: argparse.Namespace, data_dir: Path) -> None:
    dev, env = start_dev(data_dir)
    try:
        timings, ids = asyncio.run(measure(args, env))
        report(args, data_dir, timings, ids)
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--boot-delay", type=float, default=2.0)
    parser.add_argument("--data-dir", type=Path, help="keep the stack's state and logs here")
    parser.add_argument(
        "--where", action="store_true", help="also print where the time goes, per activity"
    )
    args = parser.parse_args()
    if args.data_dir:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        run(args, args.data_dir.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="dumont-bench-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
