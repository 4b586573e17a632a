"""An instance as vast.ai shows it (`GET /api/v0/instances/{id}/`, v1 list rows)."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from sim.catalogue import storage_per_hour
from sim.store import InstanceRecord

LOOPBACK = "127.0.0.1"
_PORT_KEY = re.compile(r"^-p\s+(?:\d+:)?(\d+)(?:/(tcp|udp))?$")
# Offer fields that describe the market, not the rented instance.
_OFFER_ONLY = frozenset(
    {"id", "ask_contract_id", "rentable", "rented", "search", "instance", "bundled_results"}
)


def declared_ports(env: dict[str, str]) -> list[tuple[int, str]]:
    """The `{"-p 8000:8000": "1"}` entries of a create body's env as (port, protocol)."""
    ports = []
    for key in env:
        match = _PORT_KEY.match(key.strip())
        if match:
            ports.append((int(match.group(1)), match.group(2) or "tcp"))
    return ports


def host_port(record: InstanceRecord, port: int, proto: str) -> int:
    """Where a declared container port is published: its own host port when the machine has
    a network namespace, else the same number (it shares the host's network)."""
    return record.host_ports.get(f"{port}/{proto}", port)


def machine_path() -> str:
    """The host's PATH, with the real interpreter the sim runs on first: a rented machine has
    its `python3` on PATH, not a version manager's shim (pyenv's costs ~0.2 s a start, which
    every agent, hook and snapshot run on a machine would pay)."""
    host = os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    interpreter = os.path.dirname(os.path.realpath(sys.executable))
    return os.pathsep.join(dict.fromkeys([interpreter, *host.split(os.pathsep)]))


def machine_env(
    record: InstanceRecord, visible_workspace: str, gpu_file: str, home: str
) -> dict[str, str]:
    """What every process on the machine finds in its environment (vast's container env)."""
    env = {
        "PATH": machine_path(),
        "HOME": home,
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
    }
    env.update({key: value for key, value in record.env.items() if not key.startswith("-")})
    env.update(
        {
            f"VAST_TCP_PORT_{port}": str(host_port(record, port, proto))
            for port, proto in declared_ports(record.env)
        }
    )
    env.update(
        CONTAINER_ID=str(record.id),
        CONTAINER_API_KEY=record.api_key,
        VAST_CONTAINERLABEL=f"C.{record.id}",
        PUBLIC_IPADDR=LOOPBACK,
        VAST_TCP_PORT_22=str(record.ssh_port),
        GPU_COUNT=str(record.offer.get("num_gpus", 1)),
        JUPYTER_TOKEN=record.jupyter_token,
        DATA_DIRECTORY=visible_workspace + "/",
        DUMONT_WORKSPACE=visible_workspace,
        DUMONT_SIM_GPU_FILE=gpu_file,
    )
    if record.ssh_keys:
        env["SSH_PUBLIC_KEY"] = record.ssh_keys[0].public_key
    return env


def _ports(record: InstanceRecord) -> dict[str, list[dict[str, str]]]:
    # HostPort is a string on vast.ai.
    ports = {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(record.ssh_port)}]}
    for port, proto in declared_ports(record.env):
        published = str(host_port(record, port, proto))
        ports[f"{port}/{proto}"] = [{"HostIp": "0.0.0.0", "HostPort": published}]
    return ports


def instance_json(record: InstanceRecord, now: float) -> dict[str, Any]:
    offer = record.offer
    running = record.actual_status == "running"
    gpu_hour = record.bid_price if record.bid_price is not None else float(offer["dph_base"])
    disk_hour = storage_per_hour(float(offer["storage_cost"]), record.disk_gb)
    dph_total = round(gpu_hour + disk_hour, 6)
    # Compute is billed only while running; storage from creation until destroy.
    burn = dph_total if running else round(disk_hour, 6)
    end_date = record.start_date + float(offer.get("duration", 30 * 86400))
    view = {key: value for key, value in offer.items() if key not in _OFFER_ONLY}
    view.update(
        id=record.id,
        ask_contract_id=record.offer_id,
        actual_status=record.actual_status,
        intended_status=record.intended_status,
        cur_state=record.cur_state,
        next_state=record.next_state,
        status_msg=record.status_msg,
        label=record.label,
        image_uuid=record.image,
        image_args=record.args or [],
        image_runtype=record.runtype,
        onstart=record.onstart,
        extra_env=[[key, value] for key, value in record.env.items()],
        template_id=None,
        template_hash_id=None,
        template_name=None,
        ssh_host=LOOPBACK,
        ssh_port=record.ssh_port,
        ssh_idx="0",
        public_ipaddr=LOOPBACK,
        local_ipaddrs=f"{LOOPBACK} \n",
        direct_port_start=record.ssh_port,
        direct_port_end=record.ssh_port,
        direct_port_count=1,
        machine_dir_ssh_port=record.ssh_port,
        disk_space=record.disk_gb,
        disk_usage=0.0,
        disk_util=-1.0,
        gpu_util=record.gpu_utilization if running else None,
        gpu_temp=round(35 + record.gpu_utilization * 0.45, 1) if running else None,
        vmem_usage=round(record.gpu_memory_used_mb / 1000, 3) if running else None,
        cpu_util=0.0 if running else None,
        mem_usage=0.0 if running else None,
        mem_limit=float(offer.get("cpu_ram", 0)) / 1000,
        dph_total=dph_total,
        is_bid=record.bid_price is not None,
        storage_total_cost=round(disk_hour, 6),
        start_date=record.start_date,
        end_date=end_date,
        duration=end_date - now,
        uptime_mins=round((now - record.running_since) / 60, 2) if record.running_since else None,
        time_remaining="",
        time_remaining_isbid="",
        credit_balance=None,
        credit_discount=None,
        jupyter_token=record.jupyter_token,
        volume_info=None,
        search={
            "gpuCostPerHour": gpu_hour,
            "diskHour": round(disk_hour, 6),
            "totalHour": dph_total,
        },
        instance={
            "gpuCostPerHour": gpu_hour if running else 0.0,
            "diskHour": round(disk_hour, 6),
            "totalHour": burn,
            "discountTotalHour": 0.0,
            "discountedTotalPerHour": burn,
        },
    )
    if running:
        view["ports"] = _ports(record)
    return view
