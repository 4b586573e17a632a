"""Whether a live provider instance belongs to a live machine: the rule the reconciler judges
every listed instance by, without I/O (the machines' rows are read by the caller)."""

from __future__ import annotations

from dataclasses import dataclass

from core.contracts.states import INSTANCELESS_STATES, MachineState

LABEL_PREFIX = "dumont-"
# States in which a machine may be renting an instance its row does not name yet: the create
# is under way, and the grace period covers the rest.
_RENTING = frozenset(
    {MachineState.STARTING, MachineState.WAKING, MachineState.RESUMING, MachineState.RESTARTING}
)


@dataclass(frozen=True)
class MachineRow:
    """What the rule needs of a machine's row."""

    id: str
    status: MachineState
    provider: str
    instance_id: str | None


def machine_of_label(label: str | None) -> str | None:
    """`dumont-{machine_id}-{attempt}` -> machine_id; None for any other label."""
    if label is None or not label.startswith(LABEL_PREFIX):
        return None
    machine_id, dash, attempt = label[len(LABEL_PREFIX) :].rpartition("-")
    return machine_id if dash and machine_id and attempt.isdigit() else None


def why_orphan(
    provider: str, instance_id: str, label: str | None, machine: MachineRow | None
) -> str | None:
    """Why no live machine owns this instance, or None when one does (or may). The label must
    be a machine's (`machine_of_label`); others are not judged here."""
    if machine is None:
        return f"no machine {machine_of_label(label) or '?'} exists"
    if machine.status in INSTANCELESS_STATES:
        return f"machine {machine.id} is {machine.status.value} and holds no instance"
    if machine.provider != provider:
        return f"machine {machine.id} runs on {machine.provider}, not {provider}"
    if machine.instance_id in (None, instance_id) or machine.status in _RENTING:
        return None
    return f"machine {machine.id} runs on instance {machine.instance_id}, not this one"


@dataclass(frozen=True)
class StandbyRow:
    """What the standby rule needs of a machine and its standby's row."""

    machine: MachineRow
    # The standby instance the machine's standby row names (None: none made yet, or gone).
    instance_id: str | None


def why_standby_orphan(instance_id: str, label: str | None, owner: StandbyRow | None) -> str | None:
    """Why no live machine owns this standby instance (`dumont-{id}-sb{n}`), or None when one
    does (or may: a standby being made is not named by its row yet, and the grace period covers
    that)."""
    if owner is None:
        return f"no machine owns standby {label or instance_id}"
    machine = owner.machine
    if machine.status in INSTANCELESS_STATES:
        return f"machine {machine.id} is {machine.status.value} and keeps no standby"
    if owner.instance_id in (None, instance_id):
        return None
    return f"machine {machine.id}'s standby is {owner.instance_id}, not this one"
