"""`dumont machines pause|resume ID`: follow the action with its events and the snapshot's or
the restore's progress, then say where the machine is and how it came back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from core.contracts.states import UP_STATES
from dumont.client import DumontClient
from dumont.commands.hibernation import (
    RECENT_EVENTS,
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


def _act(
    machine_id: str,
    operation: Operation,
    reason: str | None,
    *,
    no_wait: bool,
    timeout: float,
    as_json: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Send the action and follow it; the machine and its recent events once it is done, or
    None when the API's answer was printed as JSON instead."""
    with DumontClient(load_client_config()) as client:
        if as_json or no_wait:
            answer = client.machine_action(
                machine_id, operation.verb, wait=not no_wait, reason=reason
            )
            print_json(answer)
            return None
        send_and_follow(
            client,
            machine_id,
            operation,
            lambda: client.machine_action(machine_id, operation.verb, wait=False, reason=reason),
            timeout,
        )
        return client.get_machine(machine_id), client.machine_events(machine_id, RECENT_EVENTS)


def send_and_follow(
    client: DumontClient,
    machine_id: str,
    operation: Operation,
    send: Callable[[], object],
    timeout: float,
) -> None:
    """Send a pause or resume without waiting for it, then follow the machine's events until
    it is done (the machines' and the serverless commands alike)."""
    mark = newest_event_id(client, machine_id)
    send()
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
    done = _act(machine_id, PAUSE, reason, no_wait=no_wait, timeout=timeout, as_json=as_json)
    if done is None:
        return
    machine, _ = done
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
    done = _act(machine_id, RESUME, reason, no_wait=no_wait, timeout=timeout, as_json=as_json)
    if done is None:
        return
    machine, events = done
    how = next(
        (e.get("reason") for e in events if e.get("event_type") in ("resumed", "woke")), None
    )
    console.print(
        f"[green]{machine_id} is running[/]" + (f": {how}" if how else ""), soft_wrap=True
    )
    if machine.get("ssh"):
        console.print(f"  {machine['ssh']}", soft_wrap=True)
