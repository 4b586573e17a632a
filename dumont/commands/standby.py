"""`dumont standby show|enable|disable|settings|download` and `dumont machines migrate`: a GPU
machine's CPU standby, which its workspace is synced to and which takes over when the GPU is
lost. The `machines ls` column and the `machines show` section are here too."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from core.contracts.standby import STANDBY_WORKSPACE
from dumont.client import DumontClient
from dumont.commands.hibernation import JsonOption, MachineId, NoWait
from dumont.commands.serverless import duration_text
from dumont.config import load_client_config
from dumont.output import console, fail, money, print_json, reports_errors, status_text, when

app = typer.Typer(
    help="A CPU standby for a GPU machine: its workspace synced, taking over if the GPU is lost.",
    no_args_is_help=True,
)
SETTINGS_PATH = "/api/v1/settings/standby"
HEALTH_STYLES = {"healthy": "green", "failing": "bold red", "unknown": "yellow"}

Provider = Annotated[str | None, typer.Option(help="gcp (a Compute Engine VM) or vast.")]
MachineType = Annotated[str | None, typer.Option(help="GCE machine type, e.g. e2-medium.")]
Zone = Annotated[str | None, typer.Option(help="GCE zone [the cheapest near the GPU].")]
Spot = Annotated[
    bool | None, typer.Option("--spot/--no-spot", help="A Spot VM (cheaper, may be preempted).")
]
Disk = Annotated[int | None, typer.Option("--disk", help="Disk size in GB.")]
MaxPrice = Annotated[float | None, typer.Option(help="vast: most USD per hour for the offer.")]
Interval = Annotated[
    int | None, typer.Option("--interval", help="Seconds between syncs (what a loss can lose).")
]
Exclude = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="An rsync pattern not synced (repeatable).", show_default=False),
]
AutoMigrate = Annotated[
    bool | None,
    typer.Option("--auto-migrate/--no-auto-migrate", help="Move to the standby when idle."),
]
IdleMinutes = Annotated[
    int | None, typer.Option("--idle-minutes", help="Idle minutes before that move.")
]


def _client() -> DumontClient:
    return DumontClient(load_client_config())


def _path(machine_id: str, suffix: str = "standby") -> str:
    return f"/api/v1/machines/{machine_id}/{suffix}"


def _fields(**options: Any) -> dict[str, Any]:
    """The options given, as a partial body (left out: the API keeps the value)."""
    names = {"disk": "disk_gb", "interval": "sync_interval_seconds", "exclude": "excludes"}
    names |= {"idle_minutes": "idle_migrate_minutes"}
    return {names.get(k, k): v for k, v in options.items() if v is not None}


def health_text(health: str | None) -> str:
    style = HEALTH_STYLES.get(health or "", "cyan")
    return f"[{style}]{health or '-'}[/]"


def lag_text(seconds: float | None) -> str:
    return "-" if seconds is None else duration_text(seconds)


def standby_cell(machine: dict[str, Any]) -> str:
    """The `machines ls` column: `-`, or the side serving and the sync's lag."""
    standby = machine.get("standby")
    if not standby:
        return "-"
    if standby.get("side") == "cpu":
        return f"[magenta]on standby[/] ({standby.get('reason') or '-'})"
    if standby.get("instance") is None:
        return "[yellow]pending[/]"
    lag = lag_text(standby.get("lag_seconds"))
    return f"{health_text(standby.get('health'))} {lag}"


def add_standby_rows(details: Table, machine: dict[str, Any]) -> None:
    """The `machines show` section."""
    standby = machine.get("standby")
    if not standby:
        details.add_row("standby", f"none (`dumont standby enable {machine['id']}`)")
        return
    instance = standby.get("instance") or {}
    where = " ".join(
        part
        for part in (instance.get("provider"), instance.get("machine_type"), instance.get("zone"))
        if part
    )
    details.add_row("standby", f"{where or 'pending'} (serving: {standby['side']})")
    details.add_row("standby sync", f"{health_text(standby['health'])}, lag {_lag(standby)}")
    if standby.get("ssh"):
        details.add_row("standby ssh", standby["ssh"])
    if standby.get("problem"):
        details.add_row("standby problem", standby["problem"])


def _lag(standby: dict[str, Any]) -> str:
    return lag_text(standby.get("lag_seconds"))


def _print_standby(shown: dict[str, Any]) -> None:
    config = shown["config"]
    details = Table(show_header=False, box=None, padding=(0, 2))
    details.add_column(style="bold", no_wrap=True)
    details.add_column(overflow="fold")
    details.add_row("machine", f"{shown['machine_id']} ({status_text(shown['state'])})")
    if not config["enabled"]:
        details.add_row("standby", f"off (`dumont standby enable {shown['machine_id']}`)")
        console.print(details)
        return
    instance = shown.get("instance")
    if instance:
        details.add_row(
            "standby",
            f"{instance['provider']} {instance.get('machine_type') or ''} "
            f"{instance.get('zone') or ''} {instance['instance_id']} at "
            f"{money(instance.get('price_per_hour'))}/h",
        )
    else:
        details.add_row("standby", "not up yet")
    reason = f" ({shown['reason']})" if shown.get("reason") else ""
    details.add_row("serving", f"{shown['side']}{reason}")
    details.add_row("ssh", shown.get("ssh") or "-")
    details.add_row(
        "sync", f"{health_text(shown['health'])} every {config['sync_interval_seconds']} s"
    )
    details.add_row("last sync", when(shown.get("last_sync_at")))
    details.add_row("lag", _lag(shown))
    agent = shown.get("agent_sync") or {}
    if agent.get("bytes_sent") is not None:
        details.add_row("last push", f"{agent['bytes_sent']} bytes in {agent.get('seconds')} s")
    if shown.get("sync_error"):
        details.add_row("sync error", shown["sync_error"])
    if shown.get("problem"):
        details.add_row("problem", shown["problem"])
    spot = "spot" if config["spot"] else "on-demand"
    details.add_row("config", f"{config['provider']}, {config['disk_gb']} GB, {spot}")
    if config["excludes"]:
        details.add_row("excludes", " ".join(config["excludes"]))
    console.print(details)


@app.command("show")
@reports_errors
def show(machine_id: MachineId, as_json: JsonOption = False) -> None:
    """The standby: where it runs, how to SSH in, the sync's health and lag."""
    with _client() as client:
        shown = client.request("GET", _path(machine_id))
    if as_json:
        print_json(shown)
    else:
        _print_standby(shown)


@app.command("enable")
@reports_errors
def enable(
    machine_id: MachineId,
    provider: Provider = None,
    machine_type: MachineType = None,
    zone: Zone = None,
    spot: Spot = None,
    disk: Disk = None,
    max_price: MaxPrice = None,
    interval: Interval = None,
    exclude: Exclude = None,
    auto_migrate: AutoMigrate = None,
    idle_minutes: IdleMinutes = None,
    as_json: JsonOption = False,
) -> None:
    """Give the machine a standby (or change it): options left out keep their value (your
    defaults, `dumont standby settings`, for a first one)."""
    body = {"enabled": True} | _fields(
        provider=provider,
        machine_type=machine_type,
        zone=zone,
        spot=spot,
        disk=disk,
        max_price=max_price,
        interval=interval,
        exclude=exclude,
        auto_migrate=auto_migrate,
        idle_minutes=idle_minutes,
    )
    with _client() as client:
        shown = client.request("PUT", _path(machine_id), json=body)
    if as_json:
        print_json(shown)
        return
    console.print(f"[green]Standby on for {machine_id}[/]", soft_wrap=True)
    _print_standby(shown)


@app.command("disable")
@reports_errors
def disable(machine_id: MachineId, as_json: JsonOption = False) -> None:
    """Remove the standby (its VM is destroyed, the sync stops); its settings are kept."""
    with _client() as client:
        shown = client.request("DELETE", _path(machine_id))
    if as_json:
        print_json(shown)
    else:
        console.print(f"{machine_id}: standby off")


@app.command("settings")
@reports_errors
def settings(
    auto: Annotated[
        bool | None,
        typer.Option("--auto/--no-auto", help="Give every new GPU machine a standby."),
    ] = None,
    provider: Provider = None,
    machine_type: MachineType = None,
    zone: Zone = None,
    spot: Spot = None,
    disk: Disk = None,
    max_price: MaxPrice = None,
    interval: Interval = None,
    exclude: Exclude = None,
    auto_migrate: AutoMigrate = None,
    idle_minutes: IdleMinutes = None,
    as_json: JsonOption = False,
) -> None:
    """Show your standby defaults, or change those given."""
    body = _fields(
        auto_standby=auto,
        provider=provider,
        machine_type=machine_type,
        zone=zone,
        spot=spot,
        disk=disk,
        max_price=max_price,
        interval=interval,
        exclude=exclude,
        auto_migrate=auto_migrate,
        idle_minutes=idle_minutes,
    )
    with _client() as client:
        shown = client.request("PUT" if body else "GET", SETTINGS_PATH, json=body or None)
    if as_json:
        print_json(shown)
        return
    rows = Table(show_header=False, box=None, padding=(0, 2))
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column(overflow="fold")
    rows.add_row("auto_standby", "on" if shown["auto_standby"] else "off")
    for name, value in shown.items():
        if name not in ("auto_standby", "updated_at"):
            text = " ".join(value) if isinstance(value, list) else value
            rows.add_row(name, "-" if text in (None, "") else str(text))
    console.print(rows)


@app.command("download")
@reports_errors
def download(
    machine_id: MachineId,
    directory: Annotated[Path, typer.Argument(help="Where the workspace goes (made if missing).")],
    ssh_command: Annotated[
        str, typer.Option(help="The ssh rsync runs (your key and ssh config by default).")
    ] = "ssh",
) -> None:
    """Copy the standby's workspace here with rsync over SSH: resumable (run it again after a
    cut), with progress."""
    with _client() as client:
        shown = client.request("GET", _path(machine_id))
    login = shown.get("ssh_login")
    if not shown["config"]["enabled"]:
        raise fail(f"{machine_id} has no standby: `dumont standby enable {machine_id}`")
    if login is None:
        why = shown.get("problem") or "it is not up yet"
        raise fail(f"{machine_id}'s standby has no address: {why}")
    if shutil.which("rsync") is None:
        raise fail("rsync is not installed here: install it (apt-get install rsync)")
    directory.mkdir(parents=True, exist_ok=True)
    ssh = f"{ssh_command} -p {int(login['port'])}"
    source = f"{login['user']}@{login['host']}:{STANDBY_WORKSPACE}/"
    command = [
        "rsync",
        "-a",
        "--partial",
        "--append-verify",
        "--info=progress2",
        "-e",
        ssh,
        source,
        f"{directory}/",
    ]
    console.print(f"{shlex.join(command)}", markup=False, soft_wrap=True, style="dim")
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise fail(f"rsync failed (exit {done.returncode}); run it again to resume")
    console.print(f"[green]{machine_id}'s workspace is in {directory}[/]", soft_wrap=True)


@reports_errors
def migrate(
    machine_id: MachineId,
    to: Annotated[str, typer.Option("--to", help="cpu (the standby) or gpu (a new GPU).")],
    no_wait: NoWait = False,
    as_json: JsonOption = False,
) -> None:
    """Move the machine onto its standby (a final sync, then the GPU is released) or back onto
    a new GPU (the workspace restored from the standby)."""
    with _client() as client:
        params = {"wait": str(not no_wait).lower()}
        if no_wait:
            answer = client.request(
                "POST", _path(machine_id, "migrate"), params=params, json={"to": to}
            )
        else:
            with console.status(f"{machine_id}: moving to the {to}…"):
                answer = client.request(
                    "POST",
                    _path(machine_id, "migrate"),
                    params=params,
                    json={"to": to},
                    timeout=None,
                )
    if as_json:
        print_json(answer)
    elif no_wait:
        console.print(
            f"{machine_id}: migrate accepted; follow it with `dumont machines show {machine_id}`",
            soft_wrap=True,
        )
    else:
        console.print(f"{machine_id}: {status_text(answer.get('status'))}")
