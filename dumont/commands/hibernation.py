"""`dumont machines hibernate | wake | config`: put a machine to sleep in object storage, bring
it back on any matching offer, and set when that happens by itself.

Hibernate and wake are sent without waiting; the command then follows the machine, showing the
snapshot's (or the restore's) bytes from the progress route and the machine's events as they
happen, until it is done or says why not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from core.contracts.states import UP_STATES
from dumont.client import DumontClient
from dumont.config import load_client_config
from dumont.output import console, fail, print_json, reports_errors

POLL_SECONDS = 0.5
RECENT_EVENTS = 20

MachineId = Annotated[str, typer.Argument(help="Machine id.")]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Wait without progress and print the API's JSON answer.")
]
NoWait = Annotated[
    bool, typer.Option("--no-wait", help="Return once the machine accepted it, not when done.")
]
Timeout = Annotated[float, typer.Option(help="Seconds to follow it before giving up.")]


@dataclass(frozen=True)
class Operation:
    verb: str  # hibernate | wake | pause | resume
    doing: frozenset[str]  # the machine's states while it runs
    done: frozenset[str]
    # Where a failed operation leaves the machine (a hook that aborted, no offer to wake on).
    fallback: frozenset[str]
    kind: str  # the progress route's `operation`: snapshot | restore


HIBERNATE = Operation(
    "hibernate", frozenset({"hibernating"}), frozenset({"hibernated"}), UP_STATES, "snapshot"
)
WAKE = Operation(
    "wake", frozenset({"waking"}), UP_STATES, frozenset({"hibernated", "deleted"}), "restore"
)


def _client() -> DumontClient:
    return DumontClient(load_client_config())


def size_text(value: int | None) -> str:
    if not value:
        return "0 B"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"  # pragma: no cover


class _Bars:
    """The operation's byte counters as rich progress bars, created when it first reports."""

    def __init__(self, progress: Progress, operation: Operation, total: int | None) -> None:
        self.progress = progress
        self.operation = operation
        self.total = total
        self.tasks: dict[str, TaskID] = {}

    def _task(self, key: str, description: str, total: int | None) -> TaskID:
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total)
        return self.tasks[key]

    def show(self, report: dict[str, Any]) -> None:
        if report.get("operation") != self.operation.kind:
            return
        phase = report.get("phase") or "starting"
        files = report.get("files") or 0
        if self.operation.kind == "snapshot":
            scanned = self._task("scanned", "scanned", None)
            uploaded = self._task("uploaded", "uploaded", None)
            self.progress.update(
                scanned,
                completed=report["bytes_scanned"],
                description=f"scanned {files} files ({phase})",
            )
            self.progress.update(uploaded, completed=report["bytes_uploaded"])
        else:
            down = self._task("downloaded", "restoring", self.total)
            done = report["bytes_downloaded"]
            total = max(self.total or 0, done) or None
            self.progress.update(
                down, completed=done, total=total, description=f"restored {files} files ({phase})"
            )

    def finish(self) -> None:
        for task_id in self.tasks.values():
            task = self.progress.tasks[task_id]
            self.progress.update(task_id, total=task.completed or 1, completed=task.completed or 1)


def newest_event_id(client: DumontClient, machine_id: str) -> int:
    events = client.machine_events(machine_id, 1)
    return int(events[0]["id"]) if events else 0


def follow(
    client: DumontClient,
    machine_id: str,
    operation: Operation,
    since_event: int,
    timeout: float,
    total: int | None = None,
) -> None:
    """Show the operation's progress and events until the machine is done, has failed (the
    reason is the command's error) or `timeout` passed."""
    started = time.monotonic()
    seen: set[int] = set()
    began = False  # the machine recorded the operation's state
    reason: str | None = None
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bars = _Bars(progress, operation, total)
    with progress:
        while True:
            # Events first: the state read after them is at least as new (one transaction
            # writes both), so a state the operation left is never mistaken for its end.
            events = client.machine_events(machine_id, RECENT_EVENTS)
            report = client.machine_progress(machine_id)
            for event in reversed(events):  # oldest first
                if event["id"] <= since_event or event["id"] in seen:
                    continue
                seen.add(event["id"])
                began = began or event.get("state") in operation.doing
                reason = event.get("reason") or reason
                note = f"  [dim]{event['reason']}[/]" if event.get("reason") else ""
                elapsed = time.monotonic() - started
                progress.console.print(
                    f"  [dim]{elapsed:5.0f}s[/] {event['event_type']}{note}", soft_wrap=True
                )
            bars.show(report)
            state = report["state"]
            began = began or state in operation.doing
            if state in operation.done:
                bars.finish()
                return
            if state == "error" or (began and state in operation.fallback):
                detail = client.get_machine(machine_id).get("status_reason") or reason
                raise fail(
                    f"{machine_id} did not {operation.verb}: it is {state}"
                    + (f" ({detail})" if detail else "")
                )
            if time.monotonic() - started > timeout:
                raise fail(
                    f"{machine_id} is still {state} after {timeout:.0f} s; follow it with "
                    f"`dumont machines show {machine_id}`"
                )
            time.sleep(POLL_SECONDS)


@reports_errors
def hibernate(
    machine_id: MachineId,
    reason: Annotated[str | None, typer.Option(help="Recorded with the event.")] = None,
    no_wait: NoWait = False,
    timeout: Timeout = 3600,
    as_json: JsonOption = False,
) -> None:
    """Snapshot the workspace to object storage, then destroy the instance: GPU billing stops
    and `dumont machines wake` brings it back on any matching offer."""
    with _client() as client:
        if as_json:
            print_json(client.hibernate(machine_id, wait=True, reason=reason))
            return
        mark = newest_event_id(client, machine_id)
        client.hibernate(machine_id, wait=False, reason=reason)
        if no_wait:
            console.print(
                f"{machine_id}: hibernate accepted; follow it with "
                f"`dumont machines show {machine_id}`",
                soft_wrap=True,
            )
            return
        console.print(f"Hibernating [bold]{machine_id}[/]")
        try:
            follow(client, machine_id, HIBERNATE, mark, timeout)
        except KeyboardInterrupt:
            raise fail(f"stopped following; {machine_id} keeps hibernating", 130) from None
        status = client.instance_status(machine_id)
        snapshots = client.machine_snapshots(machine_id)
    latest = next((s for s in snapshots if s["id"] == status.get("snapshot_id")), None)
    size = f" ({size_text(latest['size_bytes'])})" if latest else ""
    console.print(
        f"[green]{machine_id} is hibernated[/]: snapshot {status.get('snapshot_id')}{size}, "
        "instance destroyed",
        soft_wrap=True,
    )
    console.print(f"  wake it with `dumont machines wake {machine_id}`", soft_wrap=True)


@reports_errors
def wake(
    machine_id: MachineId,
    gpu: Annotated[str | None, typer.Option(help="Wake on this GPU model instead.")] = None,
    region: Annotated[
        str | None, typer.Option(help="NA, SA, EU, AS, OC, AF or an ISO country code.")
    ] = None,
    max_price: Annotated[float | None, typer.Option(help="Most USD per hour to pay.")] = None,
    no_wait: NoWait = False,
    timeout: Timeout = 3600,
    as_json: JsonOption = False,
) -> None:
    """Rent a matching offer, restore the workspace from its snapshot, and print how to SSH in."""
    body = {"gpu_type": gpu, "region": region, "max_price": max_price}
    body = {key: value for key, value in body.items() if value is not None}
    with _client() as client:
        if as_json:
            print_json(client.wake(machine_id, body, wait=True))
            return
        snapshot_id = client.instance_status(machine_id).get("snapshot_id")
        snapshots = client.machine_snapshots(machine_id)
        latest = next((s for s in snapshots if s["id"] == snapshot_id), None)
        mark = newest_event_id(client, machine_id)
        started = time.monotonic()
        client.wake(machine_id, body, wait=False)
        if no_wait:
            console.print(
                f"{machine_id}: wake accepted; follow it with `dumont machines show {machine_id}`",
                soft_wrap=True,
            )
            return
        console.print(f"Waking [bold]{machine_id}[/]")
        try:
            follow(
                client, machine_id, WAKE, mark, timeout, latest["stored_bytes"] if latest else None
            )
        except KeyboardInterrupt:
            raise fail(f"stopped following; {machine_id} keeps waking", 130) from None
        machine = client.get_machine(machine_id)
    elapsed = time.monotonic() - started
    where = machine.get("geolocation") or machine.get("region") or "-"
    console.print(
        f"[green]{machine_id} is {machine['status']}[/] on {where} after {elapsed:.0f} s",
        soft_wrap=True,
    )
    if machine.get("ssh"):
        console.print(f"  {machine['ssh']}", markup=False, soft_wrap=True)


def _show_config(config: dict[str, Any]) -> None:
    auto, hook = config["auto_hibernation"], config["pre_hibernate"]
    details = Table(show_header=False, box=None, padding=(0, 2))
    details.add_column(style="bold", no_wrap=True)
    details.add_column(overflow="fold")
    details.add_row("auto-hibernation", "on" if auto["enabled"] else "off")
    details.add_row("gpu threshold", f"{auto['gpu_usage_threshold']:g}%")
    details.add_row("pause after", f"{auto['pause_after_minutes']} min idle")
    details.add_row("delete after", f"{auto['delete_after_minutes']} min hibernated")
    details.add_row("pre-hibernate", hook["command"] or "-")
    if hook["command"]:
        details.add_row("hook timeout", f"{hook['timeout_seconds']} s")
        details.add_row("if the hook fails", hook["on_failure"])
    console.print(details)


@reports_errors
def config(
    machine_id: MachineId,
    enable: Annotated[
        bool | None,
        typer.Option(
            "--enable/--disable", help="Turn auto-hibernation on or off.", show_default=False
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="GPU % under which the machine counts as idle.")
    ] = None,
    pause_after: Annotated[
        int | None, typer.Option(help="Minutes idle before it hibernates.")
    ] = None,
    delete_after: Annotated[
        int | None, typer.Option(help="Minutes hibernated before it is marked deleted.")
    ] = None,
    pre_hibernate_command: Annotated[
        str | None,
        typer.Option(help='Run on the machine before each snapshot; "" removes it.'),
    ] = None,
    pre_hibernate_timeout: Annotated[
        int | None, typer.Option(help="Seconds the hook may run.")
    ] = None,
    on_hook_failure: Annotated[
        str | None, typer.Option(help="abort (keep running) or continue (snapshot anyway).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a machine's auto-hibernation settings, or change those given."""
    body: dict[str, Any] = {
        "auto_hibernation_enabled": enable,
        "gpu_usage_threshold": threshold,
        "pause_after_minutes": pause_after,
        "delete_after_minutes": delete_after,
        "pre_hibernate_timeout_seconds": pre_hibernate_timeout,
        "pre_hibernate_on_failure": on_hook_failure,
    }
    body = {key: value for key, value in body.items() if value is not None}
    if pre_hibernate_command is not None:
        body["pre_hibernate_command"] = pre_hibernate_command or None
    with _client() as client:
        if body:
            result = client.update_instance_config(machine_id, body)
        else:
            result = client.instance_config(machine_id)
    if as_json:
        print_json(result)
        return
    if body:
        console.print(f"{machine_id}: settings changed")
    _show_config(result)


def savings_text(value: float | None) -> str:
    """`$1.23`, `-$0.01` (storage outweighed the GPU), or `-` for nothing saved."""
    if not value:
        return "-"
    return f"-${-value:.2f}" if value < 0 else f"${value:.2f}"


def event_detail(event: dict[str, Any]) -> str:
    """What an event carries besides its reason: the GPU reading, the snapshot."""
    data = event.get("data") or {}
    parts = []
    if data.get("gpu_utilization") is not None:
        parts.append(f"gpu {data['gpu_utilization']:.0f}%")
    if data.get("snapshot_id"):
        parts.append(f"snapshot {data['snapshot_id']}")
    return ", ".join(parts)
