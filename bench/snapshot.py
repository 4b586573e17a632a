"""Snapshot benchmark: Dumont's engine vs restic vs `tar | zstd -T0 -3 | multipart upload`, all
against the same local S3 endpoint (`rclone serve s3`), on one generated mixed workspace.

    python bench/snapshot.py --size-gb 2        # ~40,000 small files; --size-gb 0.5 for a quick run

Prints, per tool: initial snapshot time and bytes stored, restore time (medians of --rounds runs,
interleaved so no tool always goes first, each from an empty bucket), incremental time and bytes
after a 1 % change, and the bytes an unchanged workspace adds. Bytes are measured in the bucket
(objects' sizes), the same way for every tool. The initial snapshot's CPU time is shown too, all
cores together, and how much of it the S3 server spent: it shares the machine here, where R2 or
S3 would spend that on their own machines.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boto3.s3.transfer import TransferConfig  # noqa: E402

from core.db import make_engine, migrate, session_scope  # noqa: E402
from core.models import User  # noqa: E402
from core.snapshots.channel import LocalEngine  # noqa: E402
from core.snapshots.policy import SnapshotPolicy  # noqa: E402
from core.snapshots.restore_run import RestoreRun  # noqa: E402
from core.snapshots.session import SnapshotRun, SnapshotTarget  # noqa: E402
from tests.fixtures.s3 import S3Endpoint, running_s3  # noqa: E402

MiB = 1024 * 1024


# --- the workspace ------------------------------------------------------------------------


def _numeric_block(rng: random.Random) -> bytes:
    """1 MiB of float32 samples of a smooth signal with noise: compresses a little, like weights."""
    phase = rng.random() * 6.28
    values = array.array("f", (math.sin(phase + i * 0.0007) for i in range(MiB // 4)))
    noise = int.from_bytes(rng.randbytes(MiB), "little") & int.from_bytes(
        b"\xff\x3f\x00\x00" * (MiB // 4), "little"
    )
    return (int.from_bytes(values.tobytes(), "little") ^ noise).to_bytes(MiB, "little")


def _text_lines(rng: random.Random) -> list[bytes]:
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(3000)
    ]
    return [
        (
            f"{i:08d} step={rng.randint(0, 10**6)} loss={rng.random():.6f} "
            + " ".join(rng.choices(words, k=rng.randint(3, 12)))
            + "\n"
        ).encode()
        for i in range(20000)
    ]


def _sizes(total: int, low_mib: int, high_mib: int, rng: random.Random) -> list[int]:
    """File sizes between low and high MiB that add up to total."""
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(min(total - sum(sizes), rng.randint(low_mib, high_mib) * MiB))
    return sizes


def generate(root: Path, size_gb: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    total = int(size_gb * 1024**3)
    small_count = max(2000, int(20000 * size_gb))
    small_bytes = int(total * 0.10)
    random_bytes, text_bytes = int(total * 0.40), int(total * 0.25)
    numeric_bytes = total - small_bytes - random_bytes - text_bytes
    root.mkdir(parents=True)
    (root / "data").mkdir()
    for n, size in enumerate(_sizes(random_bytes, 8, 64, rng)):
        with open(root / "data" / f"shard-{n:03d}.bin", "wb") as handle:
            for _ in range(size // MiB):
                handle.write(rng.randbytes(MiB))
            handle.write(rng.randbytes(size % MiB))
    lines = _text_lines(rng)
    (root / "logs").mkdir()
    for n, size in enumerate(_sizes(text_bytes, 16, 96, rng)):
        with open(root / "logs" / f"train-{n:03d}.log", "wb") as handle:
            body = b"".join(rng.choices(lines, k=size // 60 + 1))[:size]
            handle.write(body)
    (root / "checkpoints").mkdir()
    for n, size in enumerate(_sizes(numeric_bytes, 32, 128, rng)):
        with open(root / "checkpoints" / f"weights-{n:03d}.pt", "wb") as handle:
            for _ in range(size // MiB):
                handle.write(_numeric_block(rng))
            handle.write(rng.randbytes(size % MiB))
    per_file = small_bytes // small_count
    for n in range(small_count):
        folder = root / "src" / f"pkg{n % 200:03d}" / f"mod{n % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(per_file // 4, per_file * 7 // 4)
        body = b"".join(rng.choices(lines, k=size // 60 + 1))[:size]
        (folder / f"file{n:05d}.py").write_bytes(body if n % 3 else rng.randbytes(size))
    (root / "empty-dir").mkdir()
    os.symlink("data/shard-000.bin", root / "latest.bin")


def change_one_percent(root: Path, seed: int = 2) -> int:
    """Rewrite 1 % of the small files and a few regions of big files; returns bytes changed."""
    rng = random.Random(seed)
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    budget = total // 100
    changed = 0
    small = sorted((root / "src").rglob("*.py"))
    for path in rng.sample(small, len(small) // 100):
        data = rng.randbytes(path.stat().st_size)
        path.write_bytes(data)
        changed += len(data)
    big = sorted((root / "data").glob("*.bin")) + sorted((root / "checkpoints").glob("*.pt"))
    for path in rng.sample(big, 3):
        size = min((budget - changed) // 3, path.stat().st_size // 2)
        with open(path, "r+b") as handle:
            handle.seek(rng.randrange(0, path.stat().st_size - size))
            handle.write(rng.randbytes(size))
        changed += size
    log = sorted((root / "logs").glob("*.log"))[0]
    body = log.read_bytes()
    log.write_bytes(body[: len(body) // 2] + b"an inserted line\n" + body[len(body) // 2 :])
    return changed + 17


# --- the tools ----------------------------------------------------------------------------


def bucket_bytes(s3: S3Endpoint, bucket: str) -> int:
    total = 0
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        total += sum(item["Size"] for item in page.get("Contents", []))
    return total


def empty_bucket(s3: S3Endpoint, bucket: str) -> None:
    """Every round stores a copy of the workspace: without this a run holds ~8x its size."""
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@dataclass
class Figures:
    initial_s: float = 0.0
    initial_cpu_s: float = 0.0
    initial_store_cpu_s: float = 0.0
    initial_bytes: int = 0
    restore_s: float = 0.0
    incremental_s: float = 0.0
    incremental_bytes: int = 0
    unchanged_bytes: int = 0
    notes: list[str] = field(default_factory=list)


class Tool:
    name = ""

    def __init__(self, s3: S3Endpoint, work: Path, tag: str = "") -> None:
        self.s3 = s3
        self.work = work
        self.tag = tag  # each round's copy starts from nothing: its own bucket and caches
        self.bucket = self.name.split()[0].lower().replace("|", "") + tag
        s3.client.create_bucket(Bucket=self.bucket)

    def snapshot(self, workspace: Path, label: str) -> None:
        raise NotImplementedError

    def restore(self, target: Path) -> None:
        raise NotImplementedError


class Dumont(Tool):
    name = "dumont"

    def __init__(self, s3: S3Endpoint, work: Path, tag: str = "", python: str = "") -> None:
        super().__init__(s3, work, tag)
        self.db = make_engine(f"sqlite:///{work / f'dumont{tag}.db'}")
        migrate(self.db)
        with session_scope(self.db) as session:
            session.add(User(id="bench", name="bench"))
        self.store = s3.store(self.bucket)
        self.policy = SnapshotPolicy()
        self.python = python or sys.executable
        self.last = ""
        self.root_hash = ""

    def _args(self) -> list[str]:
        return ["--cache", str(self.work / f"dumont-cache{self.tag}.json")]

    def snapshot(self, workspace: Path, label: str) -> None:
        async def go() -> None:
            run = SnapshotRun(
                self.db, self.store, self.policy, SnapshotTarget(label, "bench", "m1")
            )
            channel = await LocalEngine.start(
                "create", str(workspace), self._args(), python=self.python
            )
            result = await run.run(channel)
            self.root_hash = result.root_hash

        asyncio.run(go())
        self.last = label

    def restore(self, target: Path) -> None:
        async def go() -> None:
            run = RestoreRun(self.db, self.store, self.policy, self.last, "bench")
            channel = await LocalEngine.start(
                "restore", str(target), ["--no-cache"], python=self.python
            )
            result = await run.run(channel)
            assert result.root_hash == self.root_hash

        asyncio.run(go())


class Restic(Tool):
    name = "restic"

    def __init__(self, s3: S3Endpoint, work: Path, tag: str = "") -> None:
        super().__init__(s3, work, tag)
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "RESTIC_PASSWORD": "bench",
            "RESTIC_REPOSITORY": f"s3:{s3.endpoint}/{self.bucket}",
            "RESTIC_CACHE_DIR": str(work / f"restic-cache{tag}"),
        }
        self._run("init")

    def _run(self, *args: str) -> None:
        subprocess.run(["restic", "-q", *args], env=self.env, check=True)

    def snapshot(self, workspace: Path, label: str) -> None:
        # restic 0.14 stores per-host/path parents; cd makes the path stable across runs.
        subprocess.run(["restic", "-q", "backup", "."], env=self.env, check=True, cwd=workspace)

    def restore(self, target: Path) -> None:
        self._run("restore", "latest", "--target", str(target))


class TarZstd(Tool):
    name = "tar|zstd|s3"

    def snapshot(self, workspace: Path, label: str) -> None:
        tar = subprocess.Popen(
            ["tar", "-C", str(workspace), "-cf", "-", "."], stdout=subprocess.PIPE
        )
        zstd = subprocess.Popen(
            ["zstd", "-T0", "-3", "-q", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE
        )
        assert tar.stdout is not None and zstd.stdout is not None
        tar.stdout.close()
        config = TransferConfig(multipart_chunksize=16 * MiB, max_concurrency=4)
        self.s3.client.upload_fileobj(zstd.stdout, self.bucket, f"{label}.tar.zst", Config=config)
        assert zstd.wait() == 0 and tar.wait() == 0
        self.last = f"{label}.tar.zst"

    def restore(self, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        unpack = subprocess.Popen(
            f"zstd -d -q -c | tar -C {target} -xf -", shell=True, stdin=subprocess.PIPE
        )
        assert unpack.stdin is not None
        # One streaming GET: a pipe cannot take boto3's parallel ranged writes.
        body = self.s3.client.get_object(Bucket=self.bucket, Key=self.last)["Body"]
        for piece in body.iter_chunks(8 * MiB):
            unpack.stdin.write(piece)
        unpack.stdin.close()
        assert unpack.wait() == 0


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent (every core, user and system), from /proc/stat."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = map(int, stat.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    seconds: float
    cpu_seconds: float  # the whole machine's
    store_cpu_seconds: float  # the S3 server's part of it


def timed(action: Callable[[], Any], store_pid: int) -> Timing:
    # Each tool starts with the disk quiet: otherwise one pays for the writeback of what the
    # step before it wrote (the generated workspace, another tool's restore or uploads).
    os.sync()
    cpu, store_cpu = machine_cpu_seconds(), process_cpu_seconds(store_pid)
    started = time.perf_counter()
    action()
    return Timing(
        time.perf_counter() - started,
        machine_cpu_seconds() - cpu,
        process_cpu_seconds(store_pid) - store_cpu,
    )


def measure(
    makers: list[Callable[[str], Tool]], workspace: Path, work: Path, rounds: int
) -> dict[str, Figures]:
    """Initial snapshot and restore `rounds` times per tool, each round from an empty bucket and
    in a rotated order (no tool always goes first), medians kept; then, with the last round's
    copies, the incremental and unchanged snapshots."""
    initial: dict[str, list[Timing]] = {}
    restore: dict[str, list[float]] = {}
    figures: dict[str, Figures] = {}
    last: dict[str, Tool] = {}
    for number in range(rounds):
        order = makers[number % len(makers) :] + makers[: number % len(makers)]
        for make in order:
            tool = make(f"-{number}")
            f = figures.setdefault(tool.name, Figures())
            before = bucket_bytes(tool.s3, tool.bucket)
            pid = tool.s3.process.pid
            first = timed(partial(tool.snapshot, workspace, "s1"), pid)
            initial.setdefault(tool.name, []).append(first)
            f.initial_bytes = bucket_bytes(tool.s3, tool.bucket) - before
            target = work / f"restore-{tool.bucket}"
            back = timed(partial(tool.restore, target), pid).seconds
            restore.setdefault(tool.name, []).append(back)
            shutil.rmtree(target)
            print(
                f"  round {number + 1}: {tool.name}: initial {first.seconds:.1f}s "
                f"({first.cpu_seconds:.1f} CPU-s, store {first.store_cpu_seconds:.1f}), "
                f"restore {back:.1f}s",
                flush=True,
            )
            if number + 1 < rounds:  # only the last round's copies go on to the incrementals
                empty_bucket(tool.s3, tool.bucket)
            last[tool.name] = tool
    for name, f in figures.items():
        f.initial_s = statistics.median(t.seconds for t in initial[name])
        f.initial_cpu_s = statistics.median(t.cpu_seconds for t in initial[name])
        f.initial_store_cpu_s = statistics.median(t.store_cpu_seconds for t in initial[name])
        f.restore_s = statistics.median(restore[name])
    changed = change_one_percent(workspace)
    print(f"  changed {changed / MiB:.1f} MiB", flush=True)
    for name, tool in last.items():
        f = figures[name]
        before = bucket_bytes(tool.s3, tool.bucket)
        f.incremental_s = timed(
            partial(tool.snapshot, workspace, "s2"), tool.s3.process.pid
        ).seconds
        f.incremental_bytes = bucket_bytes(tool.s3, tool.bucket) - before
        before = bucket_bytes(tool.s3, tool.bucket)
        tool.snapshot(workspace, "s3")
        f.unchanged_bytes = bucket_bytes(tool.s3, tool.bucket) - before
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--python", default=sys.executable, help="the engine's interpreter")
    parser.add_argument("--skip", action="append", default=[], help="restic and/or tar")
    parser.add_argument(
        "--rounds", type=int, default=3, help="initial+restore runs per tool (median shown)"
    )
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="dumont-bench-"))
    workspace = work / "workspace"
    try:
        started = time.perf_counter()
        generate(workspace, args.size_gb)
        files = sum(1 for p in workspace.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in workspace.rglob("*") if p.is_file())
        print(
            f"workspace: {size / 1e9:.2f} GB, {files} files "
            f"(generated in {time.perf_counter() - started:.0f}s)"
        )
        with running_s3(work / "s3", bucket="scratch") as s3:
            makers: list[Callable[[str], Tool]] = [lambda tag: Dumont(s3, work, tag, args.python)]
            if "restic" not in args.skip and shutil.which("restic"):
                makers.append(lambda tag: Restic(s3, work, tag))
            elif "restic" not in args.skip:
                print("restic not found (apt-get install restic): left out")
            if "tar" not in args.skip:
                makers.append(lambda tag: TarZstd(s3, work, tag))
            figures = measure(makers, workspace, work, max(1, args.rounds))
        header = (
            f"{'tool':<14}{'initial s':>10}{'CPU s':>7}{'store':>7}{'MB up':>9}{'restore s':>11}"
            f"{'incr s':>9}{'incr MB':>9}{'incr %':>8}{'unchanged MB':>14}"
        )
        print(header)
        for name, f in figures.items():
            print(
                f"{name:<14}{f.initial_s:>10.1f}{f.initial_cpu_s:>7.1f}{f.initial_store_cpu_s:>7.1f}"
                f"{f.initial_bytes / 1e6:>9.0f}{f.restore_s:>11.1f}"
                f"{f.incremental_s:>9.1f}{f.incremental_bytes / 1e6:>9.1f}"
                f"{100 * f.incremental_bytes / size:>8.2f}{f.unchanged_bytes / 1e6:>14.3f}"
            )
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
