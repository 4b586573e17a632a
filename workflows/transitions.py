"""Which user action is allowed in which machine state, and what to tell the user when not.

Pure functions over `MachineState`: used by the update validators, so they must stay cheap,
synchronous and free of side effects.
"""

from __future__ import annotations

from enum import StrEnum

from core.types import MachineState

S = MachineState


class Action(StrEnum):
    STOP = "stop"
    START = "start"
    RESTART = "restart"
    DESTROY = "destroy"


# The state an action ends in when it succeeds.
TARGET: dict[Action, MachineState] = {
    Action.STOP: S.STOPPED,
    Action.START: S.RUNNING,
    Action.RESTART: S.RUNNING,
    Action.DESTROY: S.DESTROYED,
}

# The state an action is in while it runs: a second request for it waits for the same outcome.
IN_PROGRESS: dict[Action, MachineState] = {
    Action.STOP: S.STOPPING,
    Action.START: S.STARTING,
    Action.RESTART: S.RESTARTING,
    Action.DESTROY: S.DESTROYING,
}

# The states an action may begin from.
STARTS_FROM: dict[Action, frozenset[MachineState]] = {
    Action.STOP: frozenset({S.RUNNING}),
    Action.START: frozenset({S.STOPPED, S.ERROR}),
    Action.RESTART: frozenset({S.RUNNING}),
    Action.DESTROY: frozenset(S) - {S.DESTROYED},
}

_HINTS: dict[tuple[Action, MachineState], str] = {
    (Action.STOP, S.STOPPED): "machine is already stopped",
    (Action.STOP, S.STARTING): "machine is starting; stop it once it is running",
    (Action.STOP, S.RESTARTING): "machine is restarting; stop it once it is running",
    (Action.STOP, S.ERROR): "machine is in error; start it again or destroy it",
    (Action.START, S.RUNNING): "machine is already running",
    (Action.START, S.STOPPING): "machine is stopping; start it once it is stopped",
    (Action.START, S.RESTARTING): "machine is restarting; it will be running shortly",
    (Action.RESTART, S.STOPPED): "machine is stopped; start it first",
    (Action.RESTART, S.STOPPING): "machine is stopping; start it once it is stopped",
    (Action.RESTART, S.STARTING): "machine is starting; wait until it is running",
    (Action.RESTART, S.ERROR): "machine is in error; start it again or destroy it",
}


def is_joining(action: Action, state: MachineState) -> bool:
    """A request for an action already under way: it waits for that action's outcome."""
    return IN_PROGRESS[action] is state


def rejection(action: Action, state: MachineState) -> str | None:
    """Why `action` cannot be done in `state`, in words for the user; None when it can."""
    if state in STARTS_FROM[action] or is_joining(action, state):
        return None
    if state is S.DESTROYED:
        return "machine is destroyed"
    if state is S.DESTROYING:
        return "machine is being destroyed"
    hint = _HINTS.get((action, state))
    if hint is not None:
        return hint
    allowed = " or ".join(sorted(str(s) for s in STARTS_FROM[action]))
    return f"machine is {state}; it can {action} only when {allowed}"
