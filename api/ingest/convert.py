"""Agent reports → stored samples and the machine's newest heartbeat."""

from __future__ import annotations

from datetime import datetime

from api.ingest.payload import AgentStatusReport
from core.metrics.liveness import Heartbeat, SyncFigures
from core.metrics.samples import Sample


def to_sample(report: AgentStatusReport) -> Sample:
    gpu = report.gpu_metrics
    return Sample(
        machine_id=report.instance_id,
        timestamp=report.timestamp,
        gpu_utilization=gpu.utilization_percent if gpu else None,
        gpu_memory_used_mb=gpu.memory_used_mb if gpu else None,
        gpu_memory_total_mb=gpu.memory_total_mb if gpu else None,
        cpu_percent=report.cpu_percent,
        memory_used_mb=report.memory_used_mb,
        memory_total_mb=report.memory_total_mb,
        disk_used_gb=report.disk_used_gb,
        disk_total_gb=report.disk_total_gb,
        net_rx_bytes_per_s=report.net_rx_bytes_per_s,
        net_tx_bytes_per_s=report.net_tx_bytes_per_s,
        active_users=report.active_users,
        process_count=report.process_count,
    )


def to_heartbeat(report: AgentStatusReport, received_at: datetime) -> Heartbeat:
    gpu = report.gpu_metrics
    return Heartbeat(
        machine_id=report.instance_id,
        received_at=received_at,
        sample_time=report.timestamp,
        gpu_utilization=gpu.utilization_percent if gpu else None,
        active_users=report.active_users,
        last_input_at=report.last_activity,
        interval_seconds=report.interval_seconds,
        agent_version=report.agent_version,
        sync=None
        if report.sync is None
        else SyncFigures(
            last_success_at=report.sync.last_success_at,
            seconds=report.sync.last_duration_seconds,
            bytes_sent=report.sync.last_bytes_sent,
            failures=report.sync.consecutive_failures,
            error=report.sync.error,
        ),
    )
