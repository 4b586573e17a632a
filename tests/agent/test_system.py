"""CPU, memory, disk and network readings, from /proc files the test writes and the real
file system."""

from __future__ import annotations

import os
from pathlib import Path

from agent.system import SystemSampler

NET_HEADER = (
    "Inter-|   Receive                            |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop "
    "fifo colls carrier compressed\n"
)


def _net_line(name: str, rx: int, tx: int) -> str:
    return f"{name:>6}: {rx} 10 0 0 0 0 0 0 {tx} 10 0 0 0 0 0 0\n"


def write_proc(
    proc: Path, *, cpu: tuple[int, ...], net: dict[str, tuple[int, int]], available_kb: int
) -> None:
    (proc / "net").mkdir(parents=True, exist_ok=True)
    (proc / "stat").write_text(
        "cpu  " + " ".join(map(str, cpu)) + " 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n"
    )
    (proc / "meminfo").write_text(
        f"MemTotal:       16384000 kB\nMemFree:          100000 kB\n"
        f"MemAvailable:   {available_kb} kB\nBuffers:           1000 kB\n"
    )
    (proc / "net" / "dev").write_text(
        NET_HEADER + "".join(_net_line(name, rx, tx) for name, (rx, tx) in net.items())
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rates_are_the_change_since_the_previous_sample(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    # user nice system idle iowait irq softirq steal
    write_proc(
        proc,
        cpu=(100, 0, 100, 700, 100, 0, 0, 0),
        net={"lo": (5000, 5000), "eth0": (1000, 2000), "eth1": (0, 0)},
        available_kb=4096000,
    )
    clock = Clock()
    sampler = SystemSampler(str(tmp_path), proc=str(proc), clock=clock)

    # 1000 more jiffies, 250 of them busy; 2 s later eth0+eth1 moved 4000/1000 bytes, lo a lot.
    write_proc(
        proc,
        cpu=(300, 0, 150, 1350, 200, 0, 0, 0),
        net={"lo": (900000, 900000), "eth0": (4000, 2500), "eth1": (1000, 500)},
        available_kb=4096000,
    )
    clock.now += 2.0
    sample = sampler.sample()

    assert sample.cpu_percent == 25.0
    assert (sample.net_rx_bytes_per_s, sample.net_tx_bytes_per_s) == (2000.0, 500.0)
    assert (sample.memory_used_mb, sample.memory_total_mb) == (12000, 16000)


def test_what_cannot_be_read_is_unknown(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_proc(proc, cpu=(1, 0, 1, 8, 0, 0, 0, 0), net={"eth0": (10, 10)}, available_kb=1)
    clock = Clock()
    sampler = SystemSampler(str(tmp_path / "no-such-workspace"), proc=str(proc), clock=clock)
    (proc / "meminfo").write_text("garbage\n")
    (proc / "net" / "dev").unlink()
    clock.now += 1
    sample = sampler.sample()
    assert sample.memory_used_mb is None and sample.memory_total_mb is None
    assert sample.disk_used_gb is None and sample.disk_total_gb is None
    assert sample.net_rx_bytes_per_s is None and sample.net_tx_bytes_per_s is None
    assert sample.cpu_percent is None  # the CPU counters did not move: no interval to measure


def test_disk_is_the_workspace_file_system(tmp_path: Path) -> None:
    sample = SystemSampler(str(tmp_path)).sample()
    stats = os.statvfs(tmp_path)
    assert sample.disk_total_gb == round(stats.f_blocks * stats.f_frsize / 1e9, 2)
    assert sample.disk_used_gb is not None and 0 < sample.disk_used_gb <= sample.disk_total_gb
    assert sample.memory_used_mb is not None and sample.memory_total_mb is not None
    assert 0 < sample.memory_used_mb <= sample.memory_total_mb
