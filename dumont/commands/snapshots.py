"""`dumont snapshots retention`: how many snapshots of each of your machines are kept, and how
long a deleted machine's snapshots stay; your own values or the server's defaults."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from dumont.client import DumontClient
from dumont.config import load_client_config
from dumont.output import console, print_json, reports_errors

app = typer.Typer(help="Your snapshots in object storage.", no_args_is_help=True)

RETENTION_PATH = "/api/v1/snapshots/retention"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _kept_for(days: int) -> str:
    return "until you delete them" if days == 0 else f"for {_plural(days, 'day')}"


def _show(retention: dict[str, Any]) -> None:
    defaults = retention["defaults"]
    default_days = defaults["deleted_retention_days"]
    rows = Table(show_header=False, box=None, padding=(0, 2))
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column(no_wrap=True)
    rows.add_column(style="dim")
    rows.add_row(
        "keep last",
        f"{_plural(retention['keep_last'], 'snapshot')} per machine",
        f"default {defaults['keep_last']}",
    )
    rows.add_row(
        "deleted machines",
        f"snapshots kept {_kept_for(retention['deleted_retention_days'])}",
        f"default {_plural(default_days, 'day') if default_days else 'no limit'}",
    )
    console.print(rows)
    if not retention["customized"]:
        console.print("[dim]the server's defaults apply to your snapshots[/]")


@app.command("retention")
@reports_errors
def retention(
    keep_last: Annotated[
        int | None, typer.Option(help="Committed snapshots to keep per machine (1-1000).")
    ] = None,
    deleted_retention_days: Annotated[
        int | None,
        typer.Option(help="Days a deleted machine's snapshots stay (0: until you delete them)."),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Back to the defaults, except the values given here.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show your snapshot retention, or change it; it applies from the next hourly pass."""
    given = {"keep_last": keep_last, "deleted_retention_days": deleted_retention_days}
    body = {key: value for key, value in given.items() if value is not None or reset}
    with DumontClient(load_client_config()) as client:
        if reset and all(value is None for value in given.values()):
            result = client.request("DELETE", RETENTION_PATH)
        elif body:
            # With --reset the fields not given are sent as null: back to their default.
            result = client.request("PUT", RETENTION_PATH, json=body)
        else:
            result = client.request("GET", RETENTION_PATH)
    if as_json:
        print_json(result)
        return
    if body:
        console.print("snapshot retention changed")
    _show(result)
