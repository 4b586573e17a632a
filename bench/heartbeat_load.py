"""The agents' side of bench/heartbeats.py: valid reports posted by many simulated agents, from
Python processes (httpx) or from wrk, and what they measured."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection

import httpx


@dataclass
class Fleet:
    database_url: str
    machines: list[tuple[str, str]] = field(default_factory=list)  # (machine id, agent token)


def report(machine_id: str, gpu: float) -> bytes:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "instance_id": machine_id,
            "hostname": "bench",
            "timestamp": now,
            "agent_version": "bench",
            "interval_seconds": 30,
            "gpu_metrics": {
                "utilization_percent": gpu,
                "memory_used_mb": 18432,
                "memory_total_mb": 24576,
                "temperature_celsius": 70,
                "power_watts": 300,
            },
            "gpus": None,
            "gpu_error": None,
            "process_count": 2,
            "active_users": 0,
            "last_activity": None,
            "cpu_percent": 12.5,
            "memory_used_mb": 20480,
            "memory_total_mb": 65536,
            "disk_used_gb": 12.3,
            "disk_total_gb": 100.0,
            "net_rx_bytes_per_s": 1200.0,
            "net_tx_bytes_per_s": 800.0,
        }
    ).encode()


@dataclass
class Result:
    name: str
    ok: int
    errors: int
    seconds: float
    latencies: list[float]
    percentiles_ms: dict[float, float] = field(default_factory=dict)  # as wrk reports them

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def pct(self, q: float) -> float:
        if q in self.percentiles_ms:
            return self.percentiles_ms[q]
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def _agents(
    port: int, machines: list[tuple[str, str]], start_at: float, args: dict[str, float]
) -> tuple[int, int, list[float]]:
    """Each agent posts back to back over its own keep-alive connection. Its GPU flips
    between busy and idle every `flip_every` reports, so some reports are transitions."""
    url = f"http://127.0.0.1:{port}/api/agent/status"
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    await asyncio.sleep(max(0.0, start_at - time.time()))
    start = time.monotonic()
    measure_from = start + args["warmup"]
    end = measure_from + args["seconds"]
    flip_every = int(args["flip_every"])

    async def agent(machine_id: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        sent = random.randrange(flip_every)
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            while (now := time.monotonic()) < end:
                gpu = 80.0 if (sent // flip_every) % 2 else 1.0
                sent += 1
                response = await client.post(url, content=report(machine_id, gpu))
                done = time.monotonic()
                if now >= measure_from:
                    if response.status_code == 200:
                        counts["ok"] += 1
                        latencies.append(done - now)
                    else:
                        counts["errors"] += 1

    await asyncio.gather(*(agent(m, t) for m, t in machines))
    return counts["ok"], counts["errors"], latencies


def _load_process(
    port: int,
    machines: list[tuple[str, str]],
    start_at: float,
    args: dict[str, float],
    out: Connection,
) -> None:
    out.send(asyncio.run(_agents(port, machines, start_at, args)))


def load(name: str, port: int, fleet: Fleet, args: argparse.Namespace) -> Result:
    """The agents, spread over `--load-processes` processes so the client is not the limit."""
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 1.5  # every process started and connected by then
    params = {"warmup": args.warmup, "seconds": args.seconds, "flip_every": args.flip_every}
    procs, pipes = [], []
    for share in range(args.load_processes):
        receive, send = context.Pipe(duplex=False)
        machines = fleet.machines[share :: args.load_processes]
        proc = context.Process(target=_load_process, args=(port, machines, start_at, params, send))
        proc.start()
        procs.append(proc)
        pipes.append(receive)
    ok, errors, latencies = 0, 0, []
    for proc, pipe in zip(procs, pipes, strict=True):
        got_ok, got_errors, got_latencies = pipe.recv()
        proc.join()
        ok, errors = ok + got_ok, errors + got_errors
        latencies += got_latencies
    return Result(name, ok, errors, args.seconds, latencies)


WRK_SCRIPT = """
local machines = {%(machines)s}
local flip_every = %(flip_every)d
local sent = 0
local delay_ms = %(delay_ms)d
function init(args)
  sent = math.random(0, #machines * flip_every)
end
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end
function request()
  sent = sent + 1
  local m = machines[(sent %% #machines) + 1]
  local busy = math.floor(sent / #machines / flip_every) %% 2 == 1
  local gpu = busy and 80.0 or 1.0
  local ts = os.date("!%%Y-%%m-%%dT%%H:%%M:%%S") .. string.format(".%%06dZ", sent %% 1000000)
  local body = string.format(%(template)s, m[1], ts, gpu)
  return wrk.format("POST", "/api/agent/status",
    {["Authorization"] = "Bearer " .. m[2], ["Content-Type"] = "application/json"}, body)
end
"""


def load_with_wrk(name: str, port: int, fleet: Fleet, args: argparse.Namespace) -> Result:
    """The same load from wrk (C, one thread per core): a Python load generator takes about
    a core of the two by itself, which then the server under test does not get."""
    body = json.loads(report("", 0.0))
    body["instance_id"], body["timestamp"] = "@M@", "@T@"
    body["gpu_metrics"]["utilization_percent"] = "@G@"
    template = (
        json.dumps(body).replace('"@M@"', '"%s"').replace('"@T@"', '"%s"').replace('"@G@"', "%.1f")
    )
    machines = ", ".join(f'{{"{m}", "{t}"}}' for m, t in fleet.machines)
    script = WRK_SCRIPT % {
        "machines": machines,
        "flip_every": int(args.flip_every),
        "template": json.dumps(template),
        # Each connection waits this long between reports: an offered load of `--rate`/s.
        "delay_ms": round(args.agents * 1000 / args.rate) if args.rate else 0,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    command = ["wrk", "-t2", f"-c{args.agents}", f"-d{int(args.seconds)}s", "--latency"]
    subprocess.run(  # warm-up, unmeasured
        [*command[:3], f"-d{max(1, int(args.warmup))}s", "-s", fh.name, f"http://127.0.0.1:{port}"],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*command, "-s", fh.name, f"http://127.0.0.1:{port}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(fh.name)
    return parse_wrk(name, out, args.seconds)


def parse_wrk(name: str, out: str, seconds: float) -> Result:
    def ms(text: str) -> float:
        value, unit = float(text[:-2] if text.endswith(("ms", "us")) else text[:-1]), text[-2:]
        return value / 1000 if unit == "us" else value * 1000 if not unit.endswith("ms") else value

    percentiles: dict[float, float] = {}
    requests, errors = 0, 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            percentiles[float(parts[0][:-1]) / 100] = ms(parts[1])
        elif "requests in" in line:
            requests = int(parts[0])
        elif line.strip().startswith("Non-2xx"):
            errors += int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            errors += sum(int(p.rstrip(",")) for p in parts[3::2])
    return Result(name, requests - errors, errors, seconds, [], percentiles)
