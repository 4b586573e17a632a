"""One status report in the shape PROTOCOL.md fixes; unknown values are null, never 0."""

from __future__ import annotations

import math
import socket
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from agent import AGENT_VERSION
from agent.config import AgentConfig
from agent.gpu import GpuSample, summary
from agent.ssh_activity import SshActivity
from agent.system import SystemSample


def iso(moment: datetime) -> str:
    """UTC, millisecond precision, with a Z: 2026-11-22T08:00:00.123Z."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def build_report(
    config: AgentConfig,
    now: datetime,
    gpu: GpuSample,
    system: SystemSample,
    ssh: SshActivity,
    hostname: str | None = None,
    sync: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`sync`: the standby sync's block (agent.sync_status.report_block); absent without one."""
    report: dict[str, Any] = {
        "instance_id": config.machine_id,
        "hostname": hostname if hostname is not None else socket.gethostname(),
        "timestamp": iso(now),
        "agent_version": AGENT_VERSION,
        # Whole seconds, at least 1: what the API's liveness check works with.
        "interval_seconds": max(1, math.ceil(config.interval_seconds)),
        "gpu_metrics": summary(gpu.gpus),
        "gpus": None if gpu.gpus is None else [asdict(reading) for reading in gpu.gpus],
        "gpu_error": gpu.error,
        "process_count": gpu.process_count,
        "active_users": ssh.active_users,
        "last_activity": None if ssh.last_activity is None else iso(ssh.last_activity),
    }
    report.update(asdict(system))
    if sync is not None:
        report["sync"] = sync
    return report
