"""`dumont machines pause|resume ID`: follow the action with its events and the snapshot's or
the restore's progress, then say where the machine is and how it came back."""

from __future__ import annotations

from typing import Annotated

import typer

from core.contracts.states import UP_STATES
from dumont.client import DumontClient
from dumont.commands.hibernation import (
    JsonOption,
    MachineId,
    NoWait,
    Operation,
    Timeout,
    follow,
    newest_event_id,
)
from dumont.config import load_client_config
from dumont.output import console, fail, print_json, reports_errors

PAUSE = Operation("pause", frozenset({"pausing"}), frozenset({"paused"}), UP_STATES, "snapshot")
# Resuming a machine that was hibernated after a long pause wakes it: "waking" is the resume.
RESUME = Operation(
    "resume",
    frozenset({"resuming", "waking"}),
    UP_STATES,
    frozenset({"paused", "hibernated", "deleted"}),
    "restore",
)
Reason = Annotated[str | None, typer.Option(help="Recorded with the event.")]


def _run(
    client: DumontClient,
    machine_id: str,
    operation: Operation,
    reason: str | None,
    timeout: float,
) -> None:
    mark = newest_event_id(client, machine_id)
    client.machine_action(machine_id, operation.verb, wait=False, reason=reason)
    doing = "Pausing" if operation is PAUSE else "Resuming"
    console.print(f"{doing} [bold]{machine_id}[/]")
    try:
        follow(client, machine_id, operation, mark, timeout)
    except KeyboardInterrupt:
        raise fail(f"stopped following; {machine_id} keeps on", 130) from None


@reports_errors
def pause(
    machine_id: MachineId,
    reason: Reason = None,
    no_wait: NoWait = False,
    timeout: Timeout = 3600,
    as_json: JsonOption = False,
) -> None:
    """Snapshot the workspace (a safety copy in object storage), then stop the instance: GPU
    billing stops, the disk stays on the host, and `dumont machines resume` brings it back in
    seconds."""
    with DumontClient(load_client_config()) as client:
        if as_json or no_wait:
            print_json(client.machine_action(machine_id, "pause", wait=not no_wait, reason=reason))
            return
        _run(client, machine_id, PAUSE, reason, timeout)
        machine = client.get_machine(machine_id)
    console.print(
        f"[green]{machine_id} is paused[/]: {machine.get('status_reason') or 'instance stopped'}",
        soft_wrap=True,
    )
    console.print(f"  resume it with `dumont machines resume {machine_id}`", soft_wrap=True)


@reports_errors
def resume(
    machine_id: MachineId,
    reason: Reason = None,
    no_wait: NoWait = False,
    timeout: Timeout = 3600,
    as_json: JsonOption = False,
) -> None:
    """Start a paused machine on its host, or, when the host cannot take it back, on a new offer
    with the pause's snapshot restored; print how it came back and how to SSH in."""
    with DumontClient(load_client_config()) as client:
        if as_json or no_wait:
            print_json(client.machine_action(machine_id, "resume", wait=not no_wait, reason=reason))
            return
        _run(client, machine_id, RESUME, reason, timeout)
        machine = client.get_machine(machine_id)
        how = next(
            (
                e.get("reason")
                for e in client.machine_events(machine_id, 20)
                if e.get("event_type") in ("resumed", "woke")
            ),
            None,
        )
    console.print(
        f"[green]{machine_id} is running[/]" + (f": {how}" if how else ""), soft_wrap=True
    )
    if machine.get("ssh"):
        console.print(f"  {machine['ssh']}", soft_wrap=True)
