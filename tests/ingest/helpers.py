"""Machines with agent tokens, and agent reports, for ingest and metrics tests."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from core.agent_tokens import issue_agent_token
from core.contracts.states import MachineState
from core.db import session_scope
from core.models import Machine


def add_machine(engine: Engine, owner_id: str, **fields: Any) -> Machine:
    machine = Machine(
        id=f"vast_{secrets.token_hex(6)}",
        owner_id=owner_id,
        gpu_name="RTX 3090",
        image="pytorch/pytorch:latest",
        disk_gb=50,
        status=fields.pop("status", MachineState.RUNNING.value),
        **fields,
    )
    with session_scope(engine) as session:
        session.add(machine)
    return machine


def agent_token(engine: Engine, machine_id: str) -> str:
    with session_scope(engine) as session:
        return issue_agent_token(session, machine_id)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def report(machine_id: str, at: datetime, gpu: float | None = 2.5, **fields: Any) -> dict[str, Any]:
    """A full report as agent/PROTOCOL.md shows it; `gpu=None` is an unreadable GPU."""
    body: dict[str, Any] = {
        "instance_id": machine_id,
        "hostname": "c.12345",
        "timestamp": iso(at),
        "agent_version": "0.1.0",
        "interval_seconds": 30,
        "gpu_metrics": None
        if gpu is None
        else {
            "utilization_percent": gpu,
            "memory_used_mb": 18432,
            "memory_total_mb": 24576,
            "temperature_celsius": 72,
            "power_watts": 320,
        },
        "gpu_error": "NVML not found" if gpu is None else None,
        "process_count": 3,
        "active_users": 1,
        "last_activity": None,
        "cpu_percent": 12.5,
        "memory_used_mb": 20480,
        "memory_total_mb": 65536,
        "disk_used_gb": 12.3,
        "disk_total_gb": 100.0,
        "net_rx_bytes_per_s": 1200.0,
        "net_tx_bytes_per_s": 800.0,
    }
    body.update(fields)
    return body
