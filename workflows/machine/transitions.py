"""Every move between machine states, in one table, and which user action may begin in which
state, with what to tell the user when it may not.

Pure functions over `MachineState`: the update validators use them, so they stay cheap,
synchronous and free of side effects. tests/workflows/test_transitions.py enumerates them.
"""

from __future__ import annotations

from enum import StrEnum

from core.contracts.states import UP_STATES, MachineState

S = MachineState


class Action(StrEnum):
    STOP = "stop"
    START = "start"
    RESTART = "restart"
    DESTROY = "destroy"
    HIBERNATE = "hibernate"
    WAKE = "wake"
    PAUSE = "pause"
    RESUME = "resume"
    SNAPSHOT = "snapshot"
    RESTORE = "restore"
    MIGRATE = "migrate"


# Every move the workflow makes, user-requested or not. Any state but the last may be destroyed.
_ENDING = frozenset({S.DESTROYING})
_LOST_INSTANCE = frozenset({S.HIBERNATED, S.ERROR})
ALLOWED: dict[MachineState, frozenset[MachineState]] = {
    # A create, or a start of a stopped or failed machine: up, or error with why.
    S.STARTING: frozenset({S.STARTING, S.RUNNING, S.ERROR}) | _ENDING,
    # A lost instance without a standby: hibernated from its last snapshot, or in error.
    S.RUNNING: frozenset(
        {S.IDLE, S.STOPPING, S.RESTARTING, S.PAUSING, S.HIBERNATING, S.FAILING_OVER}
        | _LOST_INSTANCE
    )
    | _ENDING,
    S.IDLE: frozenset(
        {S.RUNNING, S.STOPPING, S.RESTARTING, S.PAUSING, S.HIBERNATING, S.FAILING_OVER}
        | _LOST_INSTANCE
    )
    | _ENDING,
    S.STOPPING: frozenset({S.STOPPED, S.ERROR}) | _ENDING,
    S.STOPPED: frozenset({S.STARTING}) | _ENDING,
    S.RESTARTING: frozenset({S.RUNNING, S.ERROR}) | _ENDING,
    # A failed safety snapshot puts the machine back as it was; a failed stop is an error.
    S.PAUSING: frozenset({S.PAUSED, S.RUNNING, S.IDLE, S.ERROR}) | _ENDING,
    # Paused past its limit: hibernated (the snapshot is already committed; only the destroy).
    S.PAUSED: frozenset({S.RESUMING, S.HIBERNATING}) | _ENDING,
    # On its host or on a new one; a resume that found neither stays paused, or, when its old
    # instance was gone too: hibernated, as its snapshot is committed.
    S.RESUMING: frozenset({S.RUNNING, S.PAUSED, S.HIBERNATED, S.ERROR}) | _ENDING,
    # A failed hibernate puts the machine back as it was: running, idle, paused or on standby.
    S.HIBERNATING: frozenset({S.HIBERNATED, S.RUNNING, S.IDLE, S.PAUSED, S.STANDBY, S.ERROR})
    | _ENDING,
    S.HIBERNATED: frozenset({S.WAKING, S.DELETED}) | _ENDING,
    S.DELETED: frozenset({S.WAKING}) | _ENDING,
    # A wake that found no offer goes back to where it came from.
    S.WAKING: frozenset({S.RUNNING, S.HIBERNATED, S.DELETED, S.ERROR}) | _ENDING,
    # Onto the standby (a lost GPU, a migration), or back onto a new GPU; a migration whose
    # final sync failed keeps the GPU it had.
    S.FAILING_OVER: frozenset({S.STANDBY, S.RUNNING, S.IDLE, S.ERROR}) | _ENDING,
    # Back to a GPU (the hunt after a loss, or a migration), or hibernated from the standby.
    S.STANDBY: frozenset({S.FAILING_OVER, S.HIBERNATING}) | _ENDING,
    S.ERROR: frozenset({S.STARTING}) | _ENDING,
    # A destroy that failed leaves the machine in error, to be destroyed again.
    S.DESTROYING: frozenset({S.DESTROYED, S.ERROR}),
    S.DESTROYED: frozenset(),
}


def is_allowed(before: MachineState, after: MachineState) -> bool:
    return after in ALLOWED[before]


# The state an action ends in when it succeeds.
TARGET: dict[Action, MachineState] = {
    Action.STOP: S.STOPPED,
    Action.START: S.RUNNING,
    Action.RESTART: S.RUNNING,
    Action.DESTROY: S.DESTROYED,
    Action.HIBERNATE: S.HIBERNATED,
    Action.WAKE: S.RUNNING,
    Action.PAUSE: S.PAUSED,
    Action.RESUME: S.RUNNING,
}

# The state an action is in while it runs: a second request for it waits for the same outcome.
IN_PROGRESS: dict[Action, MachineState] = {
    Action.STOP: S.STOPPING,
    Action.START: S.STARTING,
    Action.RESTART: S.RESTARTING,
    Action.DESTROY: S.DESTROYING,
    Action.HIBERNATE: S.HIBERNATING,
    Action.WAKE: S.WAKING,
    Action.PAUSE: S.PAUSING,
    Action.RESUME: S.RESUMING,
}

# The states an action may begin from.
STARTS_FROM: dict[Action, frozenset[MachineState]] = {
    Action.STOP: UP_STATES,
    Action.START: frozenset({S.STOPPED, S.ERROR}),
    Action.RESTART: UP_STATES,
    Action.DESTROY: frozenset(S) - {S.DESTROYED},
    Action.HIBERNATE: UP_STATES | {S.STANDBY},
    Action.WAKE: frozenset({S.HIBERNATED, S.DELETED}),
    Action.PAUSE: UP_STATES,
    # A machine hibernated after a long pause resumes by waking.
    Action.RESUME: frozenset({S.PAUSED, S.HIBERNATED, S.DELETED}),
    # Taken on, and put back on, the running machine; its state does not change.
    Action.SNAPSHOT: UP_STATES,
    Action.RESTORE: UP_STATES,
    # To the standby from a GPU that is up, or back to a GPU from the standby.
    Action.MIGRATE: UP_STATES | {S.STANDBY},
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
    (Action.HIBERNATE, S.HIBERNATED): "machine is already hibernated",
    (Action.HIBERNATE, S.DELETED): "machine is deleted (hibernated, snapshot kept)",
    (Action.HIBERNATE, S.WAKING): "machine is waking; hibernate it once it is running",
    (Action.HIBERNATE, S.STARTING): "machine is starting; hibernate it once it is running",
    (Action.HIBERNATE, S.STOPPED): "machine is stopped; start it first",
    (Action.WAKE, S.RUNNING): "machine is already running",
    (Action.WAKE, S.IDLE): "machine is already running",
    (Action.WAKE, S.HIBERNATING): "machine is hibernating; wake it once it is hibernated",
    (Action.WAKE, S.STOPPED): "machine is stopped, not hibernated; start it",
    (Action.START, S.HIBERNATED): "machine is hibernated; wake it",
    (Action.START, S.DELETED): "machine is deleted (hibernated, snapshot kept); wake it",
    (Action.STOP, S.HIBERNATED): "machine is hibernated: nothing is running",
    (Action.STOP, S.PAUSED): "machine is paused: nothing is running",
    (Action.START, S.PAUSED): "machine is paused; resume it",
    (Action.RESTART, S.PAUSED): "machine is paused; resume it",
    (Action.HIBERNATE, S.PAUSED): "machine is paused; resume it first",
    (Action.WAKE, S.PAUSED): "machine is paused, not hibernated; resume it",
    (Action.PAUSE, S.PAUSED): "machine is already paused",
    (Action.PAUSE, S.STOPPED): "machine is stopped; start it first",
    (Action.PAUSE, S.HIBERNATED): "machine is hibernated: nothing is running",
    (Action.PAUSE, S.RESUMING): "machine is resuming; pause it once it is running",
    (Action.PAUSE, S.STARTING): "machine is starting; pause it once it is running",
    (Action.PAUSE, S.WAKING): "machine is waking; pause it once it is running",
    (Action.RESUME, S.RUNNING): "machine is already running",
    (Action.RESUME, S.IDLE): "machine is already running",
    (Action.RESUME, S.PAUSING): "machine is pausing; resume it once it is paused",
    (Action.RESUME, S.STOPPED): "machine is stopped, not paused; start it",
    (Action.RESUME, S.HIBERNATING): "machine is hibernating; resume it once it is hibernated",
    (Action.MIGRATE, S.FAILING_OVER): "machine is moving between its GPU and its standby",
    (Action.START, S.STANDBY): "machine runs on its standby; migrate it to a GPU",
    (Action.STOP, S.STANDBY): "machine runs on its standby; migrate it to a GPU or destroy it",
    (Action.PAUSE, S.STANDBY): "machine runs on its standby; migrate it to a GPU or destroy it",
    (Action.RESTART, S.STANDBY): "machine runs on its standby; migrate it to a GPU",
    (Action.WAKE, S.STANDBY): "machine runs on its standby; migrate it to a GPU",
}


# A resume of a machine hibernated after a long pause is a wake: it is under way as `waking`.
_RESUME_BY_WAKING = frozenset({S.HIBERNATED, S.DELETED})


def in_progress(action: Action, state: MachineState) -> MachineState | None:
    """The state `action`, begun in `state`, is in while it runs (None: it does not change)."""
    if action is Action.RESUME and state in _RESUME_BY_WAKING | {S.WAKING}:
        return S.WAKING
    return IN_PROGRESS.get(action)


def is_joining(action: Action, state: MachineState) -> bool:
    """A request for an action already under way: it waits for that action's outcome (a
    resume of a machine that is waking joins the wake)."""
    return in_progress(action, state) is state


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
