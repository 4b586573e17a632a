"""The machine workflow's input, its result, and its whole state, carried across
continue-as-new."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.contracts.agent import AgentStatus
from core.contracts.hibernation import HibernationConfig, HibernationStatus
from core.contracts.machine import InstanceInfo, LifecyclePolicy, MachineSpec
from core.contracts.pause import PauseStatus
from core.contracts.records import PendingRecord
from core.contracts.serverless import ServerlessStatus
from core.contracts.standby import StandbyConfig, StandbyStatus
from core.contracts.states import MachineState


@dataclass(kw_only=True)
class MachineSnapshot:
    """The workflow's whole state: carried across continue-as-new and returned by `state()`."""

    machine_id: str
    owner_id: str
    spec: MachineSpec
    state: MachineState = MachineState.STARTING
    state_since: datetime | None = None
    instance: InstanceInfo | None = None
    attempt: int = 0
    reason: str | None = None
    boot_deadline: datetime | None = None
    counters: dict[str, int] = field(default_factory=dict)
    policy: LifecyclePolicy | None = None
    # Offers whose instance failed to boot: the next attempt provisions elsewhere.
    failed_offers: list[str] = field(default_factory=list)
    agent: AgentStatus = field(default_factory=AgentStatus)
    config: HibernationConfig = field(default_factory=HibernationConfig)
    hibernation: HibernationStatus = field(default_factory=HibernationStatus)
    pause: PauseStatus = field(default_factory=PauseStatus)
    serverless: ServerlessStatus = field(default_factory=ServerlessStatus)
    standby: StandbyStatus = field(default_factory=StandbyStatus)
    # Writes the database does not have yet, oldest first (see core/contracts/records.py).
    outbox: list[PendingRecord] = field(default_factory=list)
    # The owner's SSH keys as last read: a boot while the database is out attaches these.
    owner_keys: list[str] | None = None


@dataclass(kw_only=True)
class MachineInput:
    machine_id: str
    owner_id: str
    spec: MachineSpec
    # The machine's standby settings at create (the request's, else the owner's defaults).
    standby: StandbyConfig | None = None
    # Set only by continue-as-new.
    carried: MachineSnapshot | None = None


@dataclass(kw_only=True)
class MachineResult:
    machine_id: str
    state: MachineState
