"""`dumont sim ...`: drive the local cloud (`dumont dev`) for demos and tests."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from dumont.client import DumontClient
from dumont.config import load_client_config, load_sim_admin_config
from dumont.output import console, fail, print_json, reports_errors, table
from dumont.sim_client import SimAdminClient

app = typer.Typer(help="Drive the local cloud of `dumont dev`.", no_args_is_help=True)
faults_app = typer.Typer(
    help="Make the sim's vast.ai API fail: the next N matching calls answer an error.",
    no_args_is_help=True,
)
app.add_typer(faults_app, name="faults")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def sim_instance_id(machine_id: str) -> int:
    """The sim instance that backs a Dumont machine now."""
    with DumontClient(load_client_config()) as client:
        machine = client.get_machine(machine_id)
    instance_id = machine.get("instance_id")
    if not instance_id:
        raise fail(f"{machine_id} has no instance right now (it is {machine['status']})")
    if not str(instance_id).isdigit():
        raise fail(f"{machine_id} runs on instance {instance_id}, which is not a sim instance")
    return int(instance_id)


@app.command("load")
@reports_errors
def load(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")],
    gpu: Annotated[float, typer.Option(min=0, max=100, help="GPU utilisation, percent.")],
    vram_gb: Annotated[float, typer.Option(min=0, help="GPU memory in use, GB.")] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Set the GPU load a sim machine's agent reports (every GPU of the machine)."""
    instance_id = sim_instance_id(machine_id)
    with SimAdminClient(load_sim_admin_config()) as sim:
        instance = sim.set_gpu_load(instance_id, gpu, vram_gb * 1024)
    if as_json:
        print_json(instance)
        return
    console.print(
        f"{machine_id} (sim instance {instance_id}): GPU {gpu:g}%, {vram_gb:g} GB VRAM in use; "
        "its agent reports it from the next sample",
        soft_wrap=True,
    )


@faults_app.command("add")
@reports_errors
def add_fault(
    status: Annotated[int, typer.Option(min=400, max=599, help="HTTP status to answer.")] = 429,
    count: Annotated[int, typer.Option(min=1, help="How many calls fail.")] = 1,
    path_prefix: Annotated[
        str | None, typer.Option(help='Only calls under this path, e.g. "/api/v0/asks".')
    ] = None,
    method: Annotated[str | None, typer.Option(help="Only calls with this method.")] = None,
    body: Annotated[Literal["text", "json"], typer.Option(help="Error body format.")] = "text",
    retry_after: Annotated[
        float | None, typer.Option(min=0, help="Retry-After seconds to send.")
    ] = None,
    message: Annotated[str | None, typer.Option(help="Error text to send.")] = None,
) -> None:
    """Fail the next COUNT matching vast API calls with STATUS."""
    with SimAdminClient(load_sim_admin_config()) as sim:
        rule = sim.add_fault(
            {
                "status": status,
                "count": count,
                "path_prefix": path_prefix,
                "method": method,
                "body": body,
                "retry_after": retry_after,
                "message": message,
            }
        )
    console.print(f"fault {rule['id']}: the next {count} matching call(s) answer {status}")


@faults_app.command("ls")
@reports_errors
def list_faults(as_json: JsonOption = False) -> None:
    """Faults still armed or used up."""
    with SimAdminClient(load_sim_admin_config()) as sim:
        rules = sim.faults()
    if as_json:
        print_json(rules)
        return
    if not rules:
        console.print("No faults.")
        return
    rows = table("ID", "STATUS", "LEFT", "METHOD", "PATH", "RETRY-AFTER", keep_whole=("PATH",))
    for rule in rules:
        rows.add_row(
            str(rule["id"]),
            str(rule["status"]),
            str(rule["remaining"]),
            rule.get("method") or "any",
            rule.get("path_prefix") or "any",
            "-" if rule.get("retry_after") is None else f"{rule['retry_after']:g}s",
        )
    console.print(rows)


@faults_app.command("clear")
@reports_errors
def clear_faults() -> None:
    """Remove every fault."""
    with SimAdminClient(load_sim_admin_config()) as sim:
        sim.clear_faults()
    console.print("Faults cleared.")
