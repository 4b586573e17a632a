"""`dumont machines top`: every machine and how busy it is, refreshed in place."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from core.contracts.states import UP_STATES
from dumont.client import ApiError, ApiUnreachable, DumontClient
from dumont.config import load_client_config
from dumont.output import console, gpu_text, money, reports_errors, status_text, table
from dumont.series import human, parse_timestamp

# Machines that have an agent reporting; the others have nothing live to show.
LIVE_SERIES = "gpu,vram,cpu,ram,disk"
BAR_WIDTH = 10
EIGHTHS = " ▏▎▍▌▋▊▉█"
NO_MACHINES = "No machines yet: `dumont machines create --gpu ... --image ...`"


@dataclass(frozen=True)
class MachineLive:
    """One machine as the API lists it, with the latest value of each of its series."""

    machine: dict[str, Any]
    latest: dict[str, float]

    def value(self, name: str) -> float | None:
        return self.latest.get(name)


def latest_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The newest known mean of each series in a metrics answer."""
    found: dict[str, float] = {}
    for name, rows in (metrics.get("series") or {}).items():
        known = [row for row in rows if row[1] is not None]
        if known:
            found[name] = float(max(known, key=lambda row: parse_timestamp(row[0]))[1])
    return found


def fleet(client: DumontClient) -> list[MachineLive]:
    """Every machine of the caller; the live numbers of those that report."""
    result = []
    for machine in client.list_machines():
        latest: dict[str, float] = {}
        if machine["status"] in UP_STATES or machine.get("last_report_at"):
            try:
                latest = latest_values(client.machine_metrics(machine["id"], "24h", LIVE_SERIES))
            except ApiError as exc:
                if exc.status_code != 404:  # deleted between the list and this call
                    raise
        result.append(MachineLive(machine, latest))
    return result


def bar(percent: float | None) -> Text:
    """`████▌      42%`: a bar in eighths of a cell, then the number."""
    if percent is None:
        return Text("-", style="dim")
    clamped = max(0.0, min(100.0, percent))
    eighths = round(clamped / 100 * BAR_WIDTH * 8)
    full, part = divmod(eighths, 8)
    cells = "█" * full + (EIGHTHS[part] if part else "")
    style = "green" if clamped >= 50 else "yellow" if clamped >= 5 else "dim"
    text = Text(f"{cells:<{BAR_WIDTH}}", style=style)
    text.append(f" {clamped:3.0f}%")
    return text


def used_of_total(used: float | None, total: float | None, unit: str) -> str:
    if used is None:
        return "-"
    if total is None or total <= 0:
        return human(used, unit)
    return f"{human(used, unit)} / {human(total, unit)}"


def percent_of(used: float | None, total: float | None) -> str:
    if used is None or total is None or total <= 0:
        return "-"
    return f"{used / total * 100:.0f}%"


def age(timestamp: str | None, now: float) -> str:
    """How long ago, in the largest whole unit: `12s`, `4m`, `3h`, `2d`."""
    if not timestamp:
        return "never"
    seconds = max(0.0, now - datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def agent_text(machine: dict[str, Any], now: float) -> str:
    """`online, reported 12s ago`, `offline, ...` or `never reported`."""
    if not machine.get("last_report_at"):
        return "never reported"
    state = "[green]online[/]" if machine.get("online") else "[red]offline[/]"
    return f"{state}, reported {age(machine['last_report_at'], now)}"


def shown_status(machine: dict[str, Any]) -> str:
    """The machine's state, or `offline` when it should be reporting and its agent is silent."""
    if machine.get("online") is False and machine["status"] in UP_STATES:
        return "[bold red]offline[/]"
    return status_text(machine["status"])


def render_top(rows: list[MachineLive], now: float) -> Table:
    result = table(
        "ID", "NAME", "STATUS", "GPU", "GPU UTIL", "VRAM", "CPU", "RAM", "DISK", "REPORT",
        "$/H", keep_whole=("ID", "STATUS", "GPU UTIL", "VRAM", "RAM", "REPORT", "$/H"),
    )  # fmt: skip
    for row in rows:
        m = row.machine
        gpu = m.get("gpu_utilization")
        cpu = row.value("cpu_percent")
        result.add_row(
            m["id"],
            m.get("name") or "-",
            shown_status(m),
            gpu_text(m["gpu_name"], m.get("num_gpus")),
            bar(gpu if gpu is not None else row.value("gpu_utilization")),
            used_of_total(row.value("gpu_memory_used_mb"), row.value("gpu_memory_total_mb"), "MB"),
            "-" if cpu is None else f"{cpu:.0f}%",
            used_of_total(row.value("memory_used_mb"), row.value("memory_total_mb"), "MB"),
            percent_of(row.value("disk_used_gb"), row.value("disk_total_gb")),
            age(m.get("last_report_at"), now),
            money(m.get("price_per_hour")),
        )
    return result


def _frame(rows: list[MachineLive], now: float, note: Text | None = None) -> Group:
    heading = Text(time.strftime("%H:%M:%S", time.localtime(now)), style="bold")
    heading.append(f"  {len(rows)} machine{'s' if len(rows) != 1 else ''}  ", style="dim")
    heading.append_text(note or Text())
    if not rows:
        return Group(
            heading, Text("No machines yet: `dumont machines create --gpu ... --image ...`")
        )
    return Group(heading, render_top(rows, now))


@reports_errors
def top(
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
) -> None:
    """Every machine live: state, GPU, VRAM, CPU, RAM, disk, last report. Ctrl-C to quit."""
    with DumontClient(load_client_config()) as client:
        rows = fleet(client)  # a first failure is an error; later ones are shown and retried
        if once:
            console.print(_frame(rows, time.time()))
            return
        note = Text(f"every {interval:g}s, Ctrl-C to quit", style="dim")
        try:
            with Live(_frame(rows, time.time(), note), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    try:
                        rows = fleet(client)
                        shown = note
                    except (ApiError, ApiUnreachable) as exc:
                        shown = Text(f"{exc}; showing the last answer", style="red")
                    live.update(_frame(rows, time.time(), shown), refresh=True)
        except KeyboardInterrupt:
            return
