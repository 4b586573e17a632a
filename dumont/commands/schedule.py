"""`dumont machines schedule ID`: show, set or clear a machine's daily wake and sleep times."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.table import Table

from dumont.client import ApiError, DumontClient
from dumont.config import load_client_config
from dumont.output import console, fail, print_json, reports_errors

NO_SCHEDULE = "has no schedule"


def _path(machine_id: str) -> str:
    return f"/api/instances/{machine_id}/schedule"


def _local(value: str | None, zone: str) -> str:
    """An API timestamp in the schedule's own zone: `Mon 2027-03-15 09:00 -03`."""
    if not value:
        return "-"
    try:
        tz: tzinfo = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):  # no tz database here (Windows): show UTC
        tz = UTC
    return datetime.fromisoformat(value).astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def _print(schedule: dict[str, Any]) -> None:
    zone = schedule["timezone"]
    details = Table(show_header=False, box=None, padding=(0, 2))
    details.add_column(style="bold", no_wrap=True)
    details.add_column()
    details.add_row("machine", schedule["instance_id"])
    details.add_row("wake", schedule.get("wake_time") or "-")
    details.add_row("sleep", schedule.get("sleep_time") or "-")
    details.add_row("time zone", zone)
    mode = schedule.get("mode") or "hibernate"
    details.add_row("does", "pause / resume" if mode == "pause" else "hibernate / wake")
    details.add_row("next wake", _local(schedule.get("next_wake"), zone))
    details.add_row("next sleep", _local(schedule.get("next_sleep"), zone))
    console.print(details)


@reports_errors
def schedule(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")],
    wake: Annotated[
        str | None, typer.Option("--wake", help="Wake the machine every day at HH:MM.")
    ] = None,
    sleep: Annotated[
        str | None, typer.Option("--sleep", help="Hibernate the machine every day at HH:MM.")
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="IANA time zone of the times, e.g. America/Sao_Paulo [UTC]."),
    ] = None,
    pause: Annotated[
        bool,
        typer.Option(
            "--pause",
            help="Sleep pauses and wake resumes (back in seconds on the same host) instead of "
            "hibernating and waking.",
        ),
    ] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the schedule.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the machine's wake/sleep schedule, or set it (--wake and/or --sleep replace the
    whole schedule: a time left out is removed), or --clear it."""
    setting = wake is not None or sleep is not None
    if clear and (setting or tz is not None):
        raise fail("--clear removes the schedule: give it without --wake, --sleep or --tz")
    if (tz is not None or pause) and not setting:
        raise fail("--tz and --pause go with --wake and/or --sleep")
    with DumontClient(load_client_config()) as client:
        if clear:
            client.request("DELETE", _path(machine_id))
            console.print(f"{machine_id}: schedule removed")
            return
        if setting:
            body = {
                "wake_time": wake,
                "sleep_time": sleep,
                "timezone": tz or "UTC",
                "mode": "pause" if pause else "hibernate",
            }
            result = client.request("PUT", _path(machine_id), json=body)
        else:
            try:
                result = client.request("GET", _path(machine_id))
            except ApiError as exc:
                if exc.status_code != 404 or NO_SCHEDULE not in exc.message:
                    raise
                console.print(
                    f"{machine_id} has no schedule; set one with `dumont machines schedule "
                    f"{machine_id} --wake 09:00 --sleep 18:00 --tz America/Sao_Paulo`",
                    soft_wrap=True,
                )
                return
    if as_json:
        print_json(result)
    else:
        _print(result)
