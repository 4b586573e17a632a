"""The files the sim keeps inside a machine, and its on-start command."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

from sim.sandbox import processes
from sim.sandbox.layout import MachineLayout
from sim.store import InstanceRecord


def write_authorized_keys(layout: MachineLayout, record: InstanceRecord) -> None:
    """Root's authorized_keys: the lines root added itself (with options or a comment), then
    the instance's keys, each a bare `type base64` line as the sim writes them."""
    path = layout.home / ".ssh" / "authorized_keys"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = path.read_text()
    except (OSError, UnicodeDecodeError):
        current = ""
    own = [
        line
        for line in current.splitlines()
        if line.lstrip().startswith("#") or len(line.split()) not in (0, 2)
    ]
    path.write_text("".join(f"{line}\n" for line in own + [k.public_key for k in record.ssh_keys]))


def write_gpu_file(layout: MachineLayout, record: InstanceRecord) -> None:
    """The GPU load the machine's agent reads where NVML is absent."""
    total = int(record.offer.get("gpu_ram", 0))
    payload = {
        "gpus": [
            {
                "index": index,
                "name": record.offer.get("gpu_name"),
                "utilization_percent": record.gpu_utilization,
                "memory_used_mb": record.gpu_memory_used_mb,
                "memory_total_mb": total,
            }
            for index in range(int(record.offer.get("num_gpus", 1)))
        ],
        "updated_at": time.time(),
    }
    layout.sim_dir.mkdir(parents=True, exist_ok=True)
    tmp = layout.gpu_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, layout.gpu_file)


def _append(path: Path) -> BinaryIO:
    return open(path, "ab")  # the caller closes it


async def run_onstart(
    layout: MachineLayout, record: InstanceRecord, env: dict[str, str]
) -> asyncio.subprocess.Process | None:
    """Start the on-start command (`runtype: args`: onstart + args) in the background, its
    output appended to onstart.log; None when there is none or it could not start."""
    if record.args:
        argv = (shlex.split(record.onstart) if record.onstart else []) + record.args
    elif record.onstart:
        argv = ["/bin/bash", "-c", record.onstart]
    else:
        return None
    with _append(layout.onstart_log) as log_file:
        try:
            return await processes.spawn(
                layout,
                argv,
                env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            log_file.write(f"onstart failed to start: {exc}\n".encode())
            return None
