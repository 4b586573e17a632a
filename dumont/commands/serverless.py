"""`dumont serverless enable|disable|status|pause|resume|rotate-key MACHINE`: a machine that pauses
when idle and resumes on the first request to its gateway URL.

The endpoint key is printed once (at the first enable and at each rotation) with a line telling
the user to keep it: the API keeps only its hash.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from dumont.client import DumontClient
from dumont.commands.hibernation import (
    JsonOption,
    MachineId,
    NoWait,
    Operation,
    Timeout,
    savings_text,
)
from dumont.commands.pause import PAUSE, RESUME, Reason, send_and_follow
from dumont.config import load_client_config
from dumont.output import console, print_json, reports_errors, status_text, when

app = typer.Typer(
    help="Serverless mode: pause a machine when idle, resume it on the first request.",
    no_args_is_help=True,
)
PATH = "/api/v1/serverless"
PrintJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


def _client() -> DumontClient:
    return DumontClient(load_client_config())


def _post(client: DumontClient, path: str, **kw: Any) -> dict[str, Any]:
    result: dict[str, Any] = client.request("POST", f"{PATH}/{path}", **kw)
    return result


def minutes_text(minutes: float) -> str:
    return f"{minutes:g} min"


def duration_text(seconds: float | None) -> str:
    """`45 s`, `12 min`, `3 h 05 min`."""
    if not seconds:
        return "0 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def ms_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def _print_key(machine_id: str, key: str) -> None:
    console.print(f"  endpoint key: {key}", markup=False, soft_wrap=True)
    console.print(
        "  [bold]Keep this key[/]: it is shown only this once (send it as X-Dumont-Key or "
        f"Authorization: Bearer); `dumont serverless rotate-key {machine_id}` makes a new one.",
        soft_wrap=True,
    )


@app.command("enable")
@reports_errors
def enable(
    machine_id: MachineId,
    idle_timeout: Annotated[
        float, typer.Option(help="Minutes without requests before it pauses (5-60).")
    ] = 15,
    keep_alive: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-alive",
            help="A health-check path (repeatable): answered without the key, never wakes"
            " the machine nor keeps it awake.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        str | None, typer.Option(help="The service's declared port (default: its only one).")
    ] = None,
    readiness_path: Annotated[
        str | None, typer.Option(help="Answers below 500 once the service is ready.")
    ] = None,
    max_pending: Annotated[
        int | None, typer.Option(help="Requests held while it resumes (default 100).")
    ] = None,
    resume_timeout: Annotated[
        int | None, typer.Option(help="Seconds held requests wait before a 503 (default 300).")
    ] = None,
    public: Annotated[bool, typer.Option("--public", help="Take requests without a key.")] = False,
    via_ssh: Annotated[
        bool,
        typer.Option("--via-ssh", help="Forward over SSH, not the provider's public port."),
    ] = False,
    as_json: PrintJson = False,
) -> None:
    """Turn serverless mode on (or configure it again); print the gateway URL and,
    the first time, the endpoint key.

    Enabling again sets the whole configuration (options left out take their defaults) and
    keeps the key."""
    body: dict[str, Any] = {
        "instance_id": machine_id,
        "idle_timeout_minutes": int(idle_timeout) if idle_timeout.is_integer() else idle_timeout,
        "keep_alive_paths": list(keep_alive or []),
        "public": public,
        "via_ssh": via_ssh,
    }
    if port is not None:
        body["port"] = int(port) if port.isdigit() else port
    optional = {
        "readiness_path": readiness_path,
        "max_pending_requests": max_pending,
        "resume_timeout_seconds": resume_timeout,
    }
    body |= {k: v for k, v in optional.items() if v is not None}
    with _client() as client:
        answer = _post(client, "enable", json=body)
    if as_json:
        print_json(answer)
        return
    config = answer["config"]
    console.print(
        f"[green]Serverless mode on for {machine_id}[/]: paused after "
        f"{minutes_text(config['idle_timeout_minutes'])} without requests",
        soft_wrap=True,
    )
    console.print(f"  gateway: {answer['gateway_url']}", markup=False, soft_wrap=True)
    if answer.get("endpoint_key"):
        _print_key(machine_id, answer["endpoint_key"])
    elif not config["public"]:
        console.print(f"  endpoint key: unchanged ({answer['key_prefix']}…)", markup=False)
    if config["public"]:
        console.print("  public: requests need no key", soft_wrap=True)


@app.command("disable")
@reports_errors
def disable(machine_id: MachineId, as_json: PrintJson = False) -> None:
    """Turn serverless mode off: the gateway stops taking requests for the machine; idle
    machines hibernate again as configured. The key is kept for a later enable."""
    with _client() as client:
        answer = _post(client, "disable", json={"instance_id": machine_id})
    if as_json:
        print_json(answer)
        return
    console.print(f"Serverless mode off for {machine_id} ({answer['state']})", soft_wrap=True)


def status_table(answer: dict[str, Any]) -> Table:
    details = Table(show_header=False, box=None, padding=(0, 2))
    details.add_column(style="bold", no_wrap=True)
    details.add_column(overflow="fold")
    details.add_row("machine", answer["machine_id"])
    details.add_row("serverless", "on" if answer["enabled"] else "off")
    details.add_row("state", status_text(answer["state"]))
    config = answer.get("config")
    if config is None:
        return details
    details.add_row("gateway", answer["gateway_url"])
    details.add_row("idle timeout", minutes_text(config["idle_timeout_minutes"]))
    details.add_row("keep-alive", ", ".join(config["keep_alive_paths"]) or "-")
    details.add_row("port", config["port"] + (" (via SSH)" if config["via_ssh"] else ""))
    details.add_row("key", "none (public)" if config["public"] else f"{answer['key_prefix']}…")
    details.add_row("enabled", when(answer.get("enabled_at")))
    details.add_row("last request", when(answer.get("last_request_at")))
    details.add_row("paused", duration_text(answer["paused_seconds"]))
    details.add_row("savings", savings_text(answer["savings_usd"]))
    latency = answer["resume_latency_ms"]
    details.add_row(
        "resume latency",
        f"mean {ms_text(latency['mean'])}, p95 {ms_text(latency['p95'])}"
        f" ({latency['count']} cold starts)",
    )
    details.add_row("cycles", str(answer["cycles"]))
    if answer["cold_starts_failed"]:
        details.add_row("failed cold starts", str(answer["cold_starts_failed"]))
    return details


@app.command("status")
@reports_errors
def status(machine_id: MachineId, as_json: PrintJson = False) -> None:
    """State, gateway URL, resume latency, cycles, paused time and savings since enabled."""
    with _client() as client:
        answer: dict[str, Any] = client.request("GET", f"{PATH}/status/{machine_id}")
    if as_json:
        print_json(answer)
        return
    console.print(status_table(answer))
    if answer.get("config") is None:
        console.print(f"  enable it with `dumont serverless enable {machine_id}`", soft_wrap=True)


def _act(
    machine_id: str,
    operation: Operation,
    reason: str | None,
    *,
    no_wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Send the action through the serverless route and follow it as `dumont machines pause`
    does; then the status."""
    params = {"reason": reason} if reason else {}
    with _client() as client:
        if as_json or no_wait:
            # Waiting may take as long as a boot: no client-side timeout cuts it.
            answer = _post(
                client,
                f"{operation.verb}/{machine_id}",
                params=params | {"wait": str(not no_wait).lower()},
                timeout=60.0 if no_wait else None,
            )
            if as_json:
                print_json(answer)
            else:
                console.print(
                    f"{machine_id}: {operation.verb} accepted; follow it with "
                    f"`dumont serverless status {machine_id}`",
                    soft_wrap=True,
                )
            return
        path = f"{operation.verb}/{machine_id}"
        send_and_follow(
            client,
            machine_id,
            operation,
            lambda: _post(client, path, params=params | {"wait": "false"}),
            timeout,
        )
        answer = client.request("GET", f"{PATH}/status/{machine_id}")
    if operation is PAUSE:
        console.print(
            f"[green]{machine_id} is paused[/]: the next request to {answer['gateway_url']}"
            " resumes it",
            soft_wrap=True,
        )
    else:
        console.print(f"[green]{machine_id} is {answer['state']}[/]", soft_wrap=True)


@app.command("pause")
@reports_errors
def pause(
    machine_id: MachineId,
    reason: Reason = None,
    no_wait: NoWait = False,
    timeout: Timeout = 3600,
    as_json: JsonOption = False,
) -> None:
    """Pause a serverless machine now (snapshot, then stop: GPU billing stops); the next
    request to its gateway URL resumes it."""
    _act(machine_id, PAUSE, reason, no_wait=no_wait, timeout=timeout, as_json=as_json)


@app.command("resume")
@reports_errors
def resume(
    machine_id: MachineId,
    reason: Reason = None,
    no_wait: NoWait = False,
    timeout: Timeout = 3600,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused serverless machine without waiting for a request."""
    _act(machine_id, RESUME, reason, no_wait=no_wait, timeout=timeout, as_json=as_json)


@app.command("rotate-key")
@reports_errors
def rotate_key(machine_id: MachineId, as_json: PrintJson = False) -> None:
    """A new endpoint key; the old one stops working at once."""
    with _client() as client:
        answer = _post(client, f"rotate-key/{machine_id}")
    if as_json:
        print_json(answer)
        return
    console.print(f"New endpoint key for {machine_id} (the old one no longer works)")
    _print_key(machine_id, answer["endpoint_key"])
