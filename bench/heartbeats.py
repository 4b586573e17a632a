"""Heartbeat ingest benchmark: N concurrent simulated agents posting valid reports to the REAL
API under uvicorn (uvloop, httptools), with its SQLite database and a real Temporal dev server
behind it; in the same run, the same load against a hello-world FastAPI endpoint and a bare
endpoint that inserts one SQLite row per request, under the same uvicorn settings.

Prints req/s, p50 and p99 per case and the ratio to the bare insert. Not a test.

    .venv/bin/python bench/heartbeats.py                 # 64 agents, 1 and 2 workers
    .venv/bin/python bench/heartbeats.py --postgres      # the API on PostgreSQL instead
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from sqlalchemy import text

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# --- the two baselines (served by uvicorn from this module) ------------------------------

hello_app = FastAPI()


@hello_app.post("/api/agent/status")
async def hello() -> dict[str, bool]:
    return {"success": True}


insert_app = FastAPI()
_local = threading.local()


def _sqlite() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(os.environ["BENCH_SQLITE_PATH"], timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _local.conn = conn
    return conn


@insert_app.post("/api/agent/status")
def insert_one(request: Request, body: dict[str, Any]) -> dict[str, bool]:
    conn = _sqlite()
    conn.execute(
        "INSERT INTO samples (machine_id, ts, body) VALUES (?, ?, ?)",
        (body.get("instance_id"), body.get("timestamp"), json.dumps(body)),
    )
    conn.commit()
    return {"success": True}


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_temporal(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "temporal"),
            "server",
            "start-dev",
            "--headless",
            "--port",
            str(port),
            "--ui-port",
            str(free_port()),
            "--db-filename",
            str(data_dir / "temporal.db"),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, f"127.0.0.1:{port}"


def start_uvicorn(
    app: str, workers: int, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    args += ["--workers", str(workers), "--app-dir", str(REPO)]
    if app.endswith("create_app"):
        args.append("--factory")
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **env})
    wait_port(port)
    time.sleep(0.5 * workers)  # every worker up, not just the first
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the stack behind the real API -------------------------------------------------------


@dataclass
class Fleet:
    database_url: str
    machines: list[tuple[str, str]] = field(default_factory=list)  # (machine id, agent token)


def make_fleet(database_url: str, agents: int) -> Fleet:
    from core.accounts import create_user
    from core.agent_tokens import issue_agent_token
    from core.db import make_engine, migrate, session_scope
    from core.models import Machine

    engine = make_engine(database_url)
    migrate(engine)
    fleet = Fleet(database_url)
    with session_scope(engine) as session:
        owner = create_user(session, f"bench-{uuid.uuid4().hex[:6]}")
        for i in range(agents):
            machine = Machine(
                id=f"vast_bench{i:04d}{uuid.uuid4().hex[:4]}",
                owner_id=owner.id,
                gpu_name="RTX 4090",
                image="pytorch/pytorch",
                disk_gb=50,
                status="running",
            )
            session.add(machine)
            session.flush()
            fleet.machines.append((machine.id, issue_agent_token(session, machine.id)))
    engine.dispose()
    return fleet


async def start_listening_workflows(address: str, fleet: Fleet) -> None:
    """One workflow per machine that no worker runs: signals land in real histories."""
    from temporalio.client import Client

    from core.contracts import machine_workflow_id

    client = await Client.connect(address)
    for machine_id, _ in fleet.machines:
        await client.start_workflow(
            "MachineWorkflow", id=machine_workflow_id(machine_id), task_queue="bench-nobody"
        )


async def count_signals(address: str, fleet: Fleet) -> int:
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client

    from core.contracts import machine_workflow_id

    client = await Client.connect(address)
    total = 0
    for machine_id, _ in fleet.machines:
        handle = client.get_workflow_handle(machine_workflow_id(machine_id))
        async for event in handle.fetch_history_events():
            total += event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return total


def stored_samples(database_url: str) -> int:
    from core.db import make_engine

    engine = make_engine(database_url)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM metric_samples")).scalar_one())
    engine.dispose()
    return count


# --- the load ----------------------------------------------------------------------------


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


# --- the run -----------------------------------------------------------------------------


def postgres_database() -> str:
    from core.db import make_engine

    admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"dumont_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="dumont-bench-"))
    temporal, address = start_temporal(data_dir)
    results: list[Result] = []
    notes: list[str] = []
    try:
        for workers in [w for _ in range(args.rounds) for w in args.workers]:
            insert_db = data_dir / f"bare-{uuid.uuid4().hex[:8]}.db"
            with sqlite3.connect(insert_db) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS samples (id INTEGER PRIMARY KEY, machine_id TEXT, "
                    "ts TEXT, body TEXT)"
                )
            cases: list[tuple[str, str, dict[str, str], str | None]] = [
                ("hello world", "bench.heartbeats:hello_app", {}, None),
                (
                    "bare SQLite insert",
                    "bench.heartbeats:insert_app",
                    {"BENCH_SQLITE_PATH": str(insert_db)},
                    None,
                ),
            ]
            for mode in args.modes:
                url = (
                    postgres_database()
                    if args.postgres
                    else f"sqlite:///{data_dir / f'api-{uuid.uuid4().hex[:8]}.db'}"
                )
                env = {
                    "DUMONT_DATA_DIR": str(data_dir),
                    "DUMONT_DATABASE_URL": url,
                    "DUMONT_TEMPORAL_ADDRESS": address,
                    "DUMONT_INGEST_WAIT_FOR_COMMIT": "1" if mode == "group-commit" else "0",
                }
                db = "PostgreSQL" if args.postgres else "SQLite"
                cases.append((f"Dumont ingest ({mode}, {db})", "api.app:create_app", env, url))
            fleet_cache: dict[str, Fleet] = {}
            for name, app, env, api_url in cases:
                # The baselines check no token: any fleet's machine ids will do.
                fleet_url = api_url or f"sqlite:///{data_dir / f'tokens-{workers}.db'}"
                fleet = fleet_cache.get(fleet_url) or make_fleet(fleet_url, args.agents)
                fleet_cache[fleet_url] = fleet
                if api_url:
                    await start_listening_workflows(address, fleet)
                server, port = start_uvicorn(app, workers, env)
                try:
                    label = f"{name}, {workers} worker{'s' * (workers > 1)}"
                    loader = load_with_wrk if args.loader == "wrk" else load
                    result = await asyncio.to_thread(loader, label, port, fleet, args)
                finally:
                    stop(server)  # the lifespan writes what is queued before exiting
                results.append(result)
                if api_url:
                    notes.append(
                        f"{result.name}: {stored_samples(api_url)} samples stored, "
                        f"{await count_signals(address, fleet)} signals sent"
                    )
    finally:
        stop(temporal)
    print_table(best_of(results), args)
    for note in notes:
        print(note)


def best_of(results: list[Result]) -> list[Result]:
    """Per case, the round with the highest rate (a shared machine's noise only slows)."""
    best: dict[str, Result] = {}
    for result in results:
        if result.name not in best or result.rate > best[result.name].rate:
            best[result.name] = result
    return list(best.values())


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\n{args.agents} concurrent agents, {args.seconds:g} s per case after {args.warmup:g} s "
        f"(best of {args.rounds} rounds) "
        f"warm-up, load from {args.loader}"
        f"{f' offering {args.rate:g}/s' if args.rate else ''}, uvicorn + uvloop + httptools, "
        f"{os.cpu_count()} CPUs\n"
    )
    print(f"{'case':<58} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>8}")
    bare: dict[str, float] = {}
    for r in results:
        if r.name.startswith("bare SQLite insert"):
            bare[r.name.rsplit(", ", 1)[-1]] = r.rate
    for r in results:
        base = bare.get(r.name.rsplit(", ", 1)[-1])
        ratio = f"{r.rate / base:.2f}x" if base else ""
        print(
            f"{r.name:<58} {r.rate:>8.0f} {r.pct(0.5):>8.1f} {r.pct(0.99):>8.1f} "
            f"{r.errors:>7} {ratio:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument(
        "--loader",
        choices=["httpx", "wrk"],
        default="httpx",
        help="httpx processes, or wrk (Debian package; it leaves the CPU to the server)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="with wrk: offered reports/s over all agents (0: as fast as they are answered)",
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["queued", "group-commit"],
        choices=["queued", "group-commit"],
        help="queued: answer once queued; group-commit: answer after the batch commits",
    )
    parser.add_argument("--flip-every", type=int, default=50, help="reports between busy flips")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="repeat all cases; keep the best")
    parser.add_argument("--postgres", action="store_true", help="the API on PostgreSQL")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
