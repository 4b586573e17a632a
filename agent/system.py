"""CPU, memory, disk and network of the machine, read from /proc and statvfs.

CPU and network are rates: each sample is the change since the previous one (the first since
the sampler was made). Every reading fails on its own: what cannot be read is None.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

_MIB = 1024 * 1024
_GB = 1000**3


@dataclass(frozen=True)
class SystemSample:
    cpu_percent: float | None = None
    memory_used_mb: int | None = None
    memory_total_mb: int | None = None
    disk_used_gb: float | None = None
    disk_total_gb: float | None = None
    net_rx_bytes_per_s: float | None = None
    net_tx_bytes_per_s: float | None = None


def _cpu_times(proc: str) -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    with open(os.path.join(proc, "stat"), encoding="ascii") as handle:
        fields = handle.readline().split()
    if not fields or fields[0] != "cpu":
        raise ValueError("no cpu line in /proc/stat")
    # user nice system idle iowait irq softirq steal (guest time is already in user/nice)
    values = [int(value) for value in fields[1:9]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def _memory(proc: str) -> tuple[int, int]:
    """(used, total) MiB; used excludes what the kernel can give back (MemAvailable)."""
    info: dict[str, int] = {}
    with open(os.path.join(proc, "meminfo"), encoding="ascii") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                info[name] = int(parts[0]) * 1024
    total = info["MemTotal"]
    available = info.get("MemAvailable", info.get("MemFree", 0))
    return (total - available) // _MIB, total // _MIB


def _net_bytes(proc: str) -> tuple[int, int]:
    """(rx, tx) bytes summed over every interface but loopback."""
    rx = tx = 0
    with open(os.path.join(proc, "net", "dev"), encoding="ascii") as handle:
        for line in handle.readlines()[2:]:
            name, _, counters = line.partition(":")
            if name.strip() == "lo" or not counters:
                continue
            fields = counters.split()
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def _disk(path: str) -> tuple[float, float]:
    """(used, total) GB of the file system holding `path`."""
    stats = os.statvfs(path)
    total = stats.f_blocks * stats.f_frsize
    used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
    return round(used / _GB, 2), round(total / _GB, 2)


def _attempt(read: Callable[[], object]) -> object | None:
    try:
        return read()
    except (OSError, ValueError, KeyError, IndexError):
        return None


class SystemSampler:
    def __init__(
        self,
        workspace: str,
        proc: str = "/proc",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._workspace = workspace
        self._proc = proc
        self._clock = clock
        self._cpu = _attempt(lambda: _cpu_times(proc))
        self._net = _attempt(lambda: _net_bytes(proc))
        self._net_at = clock()

    def sample(self) -> SystemSample:
        memory = _attempt(lambda: _memory(self._proc))
        disk = _attempt(lambda: _disk(self._workspace))
        rx, tx = self._net_rates()
        return SystemSample(
            cpu_percent=self._cpu_percent(),
            memory_used_mb=memory[0] if isinstance(memory, tuple) else None,
            memory_total_mb=memory[1] if isinstance(memory, tuple) else None,
            disk_used_gb=disk[0] if isinstance(disk, tuple) else None,
            disk_total_gb=disk[1] if isinstance(disk, tuple) else None,
            net_rx_bytes_per_s=rx,
            net_tx_bytes_per_s=tx,
        )

    def _cpu_percent(self) -> float | None:
        previous, current = self._cpu, _attempt(lambda: _cpu_times(self._proc))
        self._cpu = current
        if not isinstance(previous, tuple) or not isinstance(current, tuple):
            return None
        busy, total = current[0] - previous[0], current[1] - previous[1]
        if total <= 0:
            return None  # no tick between the two reads
        return round(min(100.0, max(0.0, 100.0 * busy / total)), 1)

    def _net_rates(self) -> tuple[float | None, float | None]:
        previous, current = self._net, _attempt(lambda: _net_bytes(self._proc))
        now = self._clock()
        elapsed, self._net, self._net_at = now - self._net_at, current, now
        if not isinstance(previous, tuple) or not isinstance(current, tuple) or elapsed <= 0:
            return None, None
        # A counter that went backwards (interface reset) gives no rate rather than a negative one.
        rx, tx = current[0] - previous[0], current[1] - previous[1]
        return (
            round(rx / elapsed, 1) if rx >= 0 else None,
            round(tx / elapsed, 1) if tx >= 0 else None,
        )
