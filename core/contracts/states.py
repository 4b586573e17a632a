"""A machine's states and the groups of them that the workflow, the alerts and the CLI share,
each defined once; and a provider instance's normalised state."""

from __future__ import annotations

from enum import StrEnum


class MachineState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    HIBERNATING = "hibernating"
    HIBERNATED = "hibernated"
    WAKING = "waking"
    # GPU -> CPU failover: moving between the GPU and the standby (a lost GPU, a migration,
    # a new GPU being restored), and served by the standby.
    FAILING_OVER = "failing_over"
    STANDBY = "standby"
    ERROR = "error"
    DELETED = "deleted"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"

    def is_up(self) -> bool:
        """Answers SSH with an agent reporting: the states idleness is judged in."""
        return self in _UP

    def keeps_idleness(self) -> bool:
        """The idleness clock survives it (a failed hibernate or pause goes back to idle)."""
        return self in _UP or self in (MachineState.HIBERNATING, MachineState.PAUSING)

    def bills(self) -> bool:
        """A GPU instance is rented (or being rented) by the hour. A stopped or paused machine
        keeps only its disk; an errored one bills only if it still holds an instance, which its
        snapshot says."""
        return self in _BILLS

    def holds_instance(self) -> bool:
        """Holds a provider instance or is renting one (a stopped or paused machine keeps its
        host and disk): what a per-owner machine quota counts."""
        return self not in _INSTANCELESS

    def is_ending(self) -> bool:
        """Destroyed, or on its way there: no other action is taken."""
        return self in (MachineState.DESTROYING, MachineState.DESTROYED)


S = MachineState
_UP = frozenset({S.RUNNING, S.IDLE})
_BILLS = frozenset(
    {
        S.STARTING,
        S.RUNNING,
        S.IDLE,
        S.RESTARTING,
        S.STOPPING,
        S.PAUSING,
        S.RESUMING,
        S.HIBERNATING,
        S.WAKING,
    }
)
_INSTANCELESS = frozenset({S.HIBERNATED, S.DELETED, S.DESTROYED})
# The same groups as sets, for queries and for the CLI's string states.
UP_STATES: frozenset[MachineState] = _UP
BILLED_STATES: frozenset[MachineState] = _BILLS
INSTANCELESS_STATES: frozenset[MachineState] = _INSTANCELESS


class InstanceStatus(StrEnum):
    """A provider instance's state, normalised across providers."""

    PROVISIONING = "provisioning"  # requested, image loading
    RUNNING = "running"
    STOPPED = "stopped"
    # Asked to start, still stopped: its host's GPUs are taken (vast.ai's "Scheduling"). It may
    # start when they free up, or never; a resume moves to a new host instead of waiting.
    WAITING_FOR_HOST = "waiting_for_host"
    FAILED = "failed"  # exited / could not start: destroy and try elsewhere
    UNKNOWN = "unknown"  # host lost contact; may recover
    GONE = "gone"  # destroyed or never existed
