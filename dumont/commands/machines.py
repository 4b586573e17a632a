"""`dumont machines ...`: create, list, show, act on and remove machines."""

from __future__ import annotations

import contextlib
import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from core.contracts.bid import check_bid_price, check_interruptible
from core.contracts.states import UP_STATES
from dumont.client import DumontClient
from dumont.commands.hibernation import config, event_detail, hibernate, savings_text, wake
from dumont.commands.metrics import metrics
from dumont.commands.pause import pause, resume
from dumont.commands.schedule import schedule
from dumont.commands.service import (
    EnvOption,
    OnStartOption,
    PortOption,
    ports_text,
    service_fields,
)
from dumont.commands.standby import add_standby_rows, migrate, standby_cell
from dumont.commands.top import agent_text, top
from dumont.config import load_client_config
from dumont.output import (
    console,
    fail,
    gpu_text,
    money,
    print_json,
    reports_errors,
    status_text,
    table,
    when,
)

app = typer.Typer(help="Create and manage GPU machines.", no_args_is_help=True)

FAILED_STATES = frozenset({"error", "destroyed", "deleted"})

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DESTROYED = "destroyed"
# After the status of a machine in serverless mode (`dumont serverless status ID`).
SERVERLESS_MARK = " [magenta]serverless[/]"
NoWait = Annotated[
    bool, typer.Option("--no-wait", help="Return once the action is accepted, not when done.")
]


def _client() -> DumontClient:
    return DumontClient(load_client_config())


def _location(machine: dict[str, Any]) -> str:
    return machine.get("geolocation") or machine.get("region") or "-"


def _event_text(event: dict[str, Any]) -> str:
    """`stop_requested → stopping`; a state change named after its state shows it once."""
    kind, state = event["event_type"], event.get("state")
    return kind if not state or state == kind else f"{kind} → {status_text(state)}"


def _print_event(event: dict[str, Any], started: float) -> None:
    elapsed = max(0.0, time.monotonic() - started)
    reason = f"  [dim]{event['reason']}[/]" if event.get("reason") else ""
    console.print(f"  [dim]{elapsed:5.0f}s[/] {_event_text(event)}{reason}")


def wait_until_up(
    client: DumontClient, machine_id: str, timeout: float, poll: float = 1.0, quiet: bool = False
) -> dict[str, Any]:
    """Follow the machine live (its events as they happen, unless `quiet`: stdout is for
    JSON then) until it is up or has failed."""
    started = time.monotonic()
    seen: set[int] = set()
    spinner = console.status(f"{machine_id}: starting…")
    with contextlib.nullcontext() if quiet else spinner:
        while True:
            machine = client.get_machine(machine_id)
            for event in reversed(client.machine_events(machine_id)):  # newest first → oldest
                if event["id"] not in seen:
                    seen.add(event["id"])
                    if not quiet:
                        _print_event(event, started)
            status = machine["status"]
            if status in UP_STATES:
                return machine
            if status in FAILED_STATES:
                reason = machine.get("status_reason") or "no reason recorded"
                raise fail(f"{machine_id} is {status}: {reason}")
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise fail(
                    f"{machine_id} is still {status} after {timeout:.0f} s; "
                    f"follow it with `dumont machines show {machine_id}`"
                )
            spinner.update(f"{machine_id}: {status_text(status)} ({elapsed:.0f} s)")
            time.sleep(poll)


def check_bid_flags(provider: str, interruptible: bool, bid: float | None) -> None:
    """The API's own checks (core/contracts/bid.py), before anything is sent."""
    for flag, check in (
        ("--interruptible", lambda: check_interruptible(provider, interruptible)),
        ("--bid", lambda: check_bid_price(interruptible, bid)),
    ):
        try:
            check()
        except ValueError as exc:
            raise fail(f"{flag}: {exc}", 2) from None


@app.command("create")
@reports_errors
def create(
    gpu: Annotated[
        str | None, typer.Option(help='GPU model, e.g. "RTX 4090" (vast.ai machines).')
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="Docker image to run (vast.ai); a VM image on GCP [debian-12]."),
    ] = None,
    provider: Annotated[
        str, typer.Option(help="vast (GPU machines) or gcp (CPU VMs on Compute Engine).")
    ] = "vast",
    machine_type: Annotated[
        str | None, typer.Option(help="GCP machine type, e.g. e2-medium [the cheapest].")
    ] = None,
    zone: Annotated[str | None, typer.Option(help="GCP zone, e.g. us-central1-a.")] = None,
    spot: Annotated[bool, typer.Option(help="A GCP Spot VM (cheaper, may be preempted).")] = False,
    interruptible: Annotated[
        bool,
        typer.Option(help="A vast.ai interruptible (bid) instance: cheaper, stopped when outbid."),
    ] = False,
    bid: Annotated[
        float | None,
        typer.Option(help="With --interruptible: the bid, USD per hour [each offer's minimum]."),
    ] = None,
    disk: Annotated[int, typer.Option(help="Disk size in GB.")] = 50,
    region: Annotated[
        str | None, typer.Option(help="NA, SA, EU, AS, OC, AF or an ISO country code.")
    ] = None,
    max_price: Annotated[float | None, typer.Option(help="Most USD per hour to pay.")] = None,
    num_gpus: Annotated[int, typer.Option(help="GPUs per machine.")] = 1,
    min_reliability: Annotated[float | None, typer.Option(help="0..1.")] = None,
    min_vram: Annotated[float | None, typer.Option(help="GB of memory per GPU.")] = None,
    name: Annotated[str | None, typer.Option(help="A name to recognise it by.")] = None,
    port: PortOption = None,
    env: EnvOption = None,
    on_start: OnStartOption = None,
    no_wait: NoWait = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to be up.")] = 900,
    as_json: JsonOption = False,
) -> None:
    """Rent a machine (a vast.ai GPU machine, or a GCP CPU VM) and follow it until it is up,
    then print how to SSH in."""
    on_gcp = provider == "gcp"
    if not on_gcp and (gpu is None or image is None):
        raise fail("a vast.ai machine needs --gpu and --image (or use --provider gcp)", 2)
    check_bid_flags(provider, interruptible, bid)
    image = image or "debian-12"
    body = {
        "provider": provider,
        "kind": "cpu" if on_gcp else "gpu",
        "machine_type": machine_type,
        "zone": zone,
        "spot": spot or None,
        "interruptible": interruptible or None,
        "bid_price": bid,
        "gpu_name": gpu,
        "image": image,
        "disk_gb": disk,
        "num_gpus": None if on_gcp else num_gpus,
        "region": region,
        "max_price": max_price,
        "min_reliability": min_reliability,
        "min_vram_gb": min_vram,
        "name": name,
    }
    body = {k: v for k, v in body.items() if v is not None} | service_fields(port, env, on_start)
    with _client() as client:
        machine = client.create_machine(body)
        machine_id = machine["id"]
        if no_wait:
            if as_json:
                print_json(machine)
            else:
                console.print(f"{machine_id}: {status_text(machine['status'])}")
            return
        if not as_json:
            what = machine_type or "a CPU VM" if on_gcp else gpu_text(gpu or "", num_gpus)
            console.print(f"Created [bold]{machine_id}[/] ({what}, {image})")
        try:
            machine = wait_until_up(client, machine_id, timeout, quiet=as_json)
        except KeyboardInterrupt:
            raise fail(
                f"stopped waiting; {machine_id} keeps starting: "
                f"`dumont machines show {machine_id}`",
                130,
            ) from None
    if as_json:
        print_json(machine)
        return
    console.print(
        f"[green]{machine_id} is {machine['status']}[/] on {_location(machine)} "
        f"at {money(machine.get('price_per_hour'))}/h"
    )
    if machine.get("ssh"):
        console.print(f"  {machine['ssh']}", markup=False, soft_wrap=True)
    if machine.get("ports"):
        console.print(f"  ports: {ports_text(machine)}", markup=False, soft_wrap=True)


@app.command("ls")
@reports_errors
def list_machines(
    as_json: JsonOption = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list the machines you destroyed.")
    ] = False,
) -> None:
    """List your machines (hibernated and deleted ones too: they can be woken)."""
    with _client() as client:
        listed = client.list_machines()
    # A destroyed machine is history (its events stay): it clutters the list of what you have.
    machines = listed if show_all else [m for m in listed if m["status"] != DESTROYED]
    hidden = len(listed) - len(machines)
    if as_json:
        print_json(machines)
        return
    if not machines:
        if hidden:
            console.print(f"No machines; {hidden} destroyed (`dumont machines ls --all`)")
        else:
            console.print("No machines yet: `dumont machines create --gpu ... --image ...`")
        return
    # A machine's ports' addresses, when any of them runs a service; its standby, when any has.
    ports = ("PORTS",) if any(m.get("ports") for m in machines) else ()
    standby = ("STANDBY",) if any(m.get("standby") for m in machines) else ()
    rows = table(
        "ID", "NAME", "STATUS", "GPU", "$/H", "SAVINGS", "LOCATION", "SSH", *standby, *ports,
        keep_whole=("ID", "STATUS", "$/H", "SAVINGS", "SSH"),
    )  # fmt: skip
    for m in machines:
        rows.add_row(
            m["id"],
            m.get("name") or "-",
            status_text(m["status"]) + (SERVERLESS_MARK if m.get("serverless") else ""),
            gpu_text(m["gpu_name"], m.get("num_gpus")),
            money(m.get("price_per_hour")),
            savings_text(m.get("savings_usd")),
            _location(m),
            m.get("ssh") or "-",
            *([standby_cell(m)] if standby else []),
            *([ports_text(m, arrow="→")] if ports else []),
        )
    console.print(rows)
    if hidden:
        console.print(f"[dim]{hidden} destroyed not shown (--all)[/]")


@app.command("show")
@reports_errors
def show(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")], as_json: JsonOption = False
) -> None:
    """Everything about one machine."""
    with _client() as client:
        machine = client.get_machine(machine_id)
    if as_json:
        print_json(machine)
        return
    details = Table(show_header=False, box=None, padding=(0, 2))
    details.add_column(style="bold", no_wrap=True)
    details.add_column(overflow="fold")
    details.add_row("id", machine["id"])
    details.add_row("name", machine.get("name") or "-")
    details.add_row("status", status_text(machine["status"]))
    if machine.get("serverless"):
        details.add_row("serverless", f"on (`dumont serverless status {machine['id']}`)")
    if machine.get("status_reason"):
        details.add_row("reason", machine["status_reason"])
    details.add_row("gpu", gpu_text(machine["gpu_name"], machine.get("num_gpus")))
    details.add_row("image", machine["image"])
    details.add_row("disk", f"{machine['disk_gb']} GB")
    details.add_row("region", machine.get("region") or "-")
    details.add_row("location", machine.get("geolocation") or "-")
    details.add_row("price", f"{money(machine.get('price_per_hour'))}/h")
    if machine.get("interruptible"):
        bid = machine.get("bid_price")
        details.add_row("bid", f"{money(bid)}/h" if bid is not None else "each offer's minimum")
    details.add_row("agent", agent_text(machine, time.time()))
    if machine.get("gpu_utilization") is not None:
        details.add_row("gpu util", f"{machine['gpu_utilization']:.0f}%")
    details.add_row("instance", machine.get("instance_id") or "-")
    details.add_row("ssh", machine.get("ssh") or "-")
    if machine.get("ports"):
        details.add_row("ports", ports_text(machine))
    if machine.get("env_names"):
        details.add_row("env", ", ".join(machine["env_names"]))
    if machine.get("on_start"):
        details.add_row("on-start", Text(machine["on_start"]))  # shell, not markup
    if machine.get("kind") != "cpu":
        add_standby_rows(details, machine)
    details.add_row("created", when(machine.get("created_at")))
    details.add_row("updated", when(machine.get("updated_at")))
    console.print(details)


def _act(machine_id: str, action: str, doing: str, no_wait: bool, as_json: bool) -> None:
    with _client() as client:
        if no_wait:
            accepted = client.machine_action(machine_id, action, wait=False)
            if as_json:
                print_json(accepted)
            else:
                console.print(
                    f"{machine_id}: {action} accepted; follow it with "
                    f"`dumont machines show {machine_id}`",
                    soft_wrap=True,
                )
            return
        with console.status(f"{machine_id}: {doing}…"):
            machine = client.machine_action(machine_id, action, wait=True)
    if as_json:
        print_json(machine)
    else:
        console.print(f"{machine_id}: {status_text(machine.get('status'))}")


@app.command("stop")
@reports_errors
def stop(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")],
    no_wait: NoWait = False,
    as_json: JsonOption = False,
) -> None:
    """Stop a machine: GPU billing stops, the disk stays on the host."""
    _act(machine_id, "stop", "stopping", no_wait, as_json)


@app.command("start")
@reports_errors
def start(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")],
    no_wait: NoWait = False,
    as_json: JsonOption = False,
) -> None:
    """Start a stopped machine."""
    _act(machine_id, "start", "starting", no_wait, as_json)


@app.command("restart")
@reports_errors
def restart(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")],
    no_wait: NoWait = False,
    as_json: JsonOption = False,
) -> None:
    """Reboot a machine."""
    _act(machine_id, "restart", "restarting", no_wait, as_json)


@app.command("rm")
@reports_errors
def remove(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    no_wait: NoWait = False,
) -> None:
    """Destroy a machine's instance; its record and events are kept."""
    if not yes:
        typer.confirm(f"Destroy {machine_id}? Its instance and disk are deleted", abort=True)
    with _client() as client:
        if no_wait:
            client.delete_machine(machine_id, wait=False)
            console.print(f"{machine_id}: destroy accepted")
            return
        with console.status(f"{machine_id}: destroying…"):
            machine = client.delete_machine(machine_id, wait=True)
    console.print(f"{machine_id}: {status_text((machine or {}).get('status', 'destroyed'))}")


@app.command("events")
@reports_errors
def events(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")],
    limit: Annotated[int, typer.Option(help="How many of the latest events.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """A machine's history, oldest first."""
    with _client() as client:
        items = list(reversed(client.machine_events(machine_id, limit)))
    if as_json:
        print_json(items)
        return
    rows = table("TIME", "EVENT", "DETAIL", "REASON", keep_whole=("TIME",))
    for event in items:
        rows.add_row(
            when(event.get("timestamp")),
            _event_text(event),
            event_detail(event),
            event.get("reason") or "",
        )
    console.print(rows)


app.command("pause")(pause)
app.command("resume")(resume)
app.command("hibernate")(hibernate)
app.command("wake")(wake)
app.command("config")(config)
app.command("top")(top)
app.command("metrics")(metrics)
app.command("schedule")(schedule)
app.command("migrate")(migrate)
