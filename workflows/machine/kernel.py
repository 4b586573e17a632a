"""The machine workflow's kernel: the carried state, the one lock, cancellation by a destroy,
state transitions checked against the table, and event recording. Capabilities (provisioning,
the agent, idleness, hibernation; later serverless and failover) are plain classes over it that
hook into transitions and boots.

Since the outbox (patch `event-outbox`), recording never waits on the database: each write is
appended to the carried outbox and a flusher task writes it outside the lock. Runs started
before it keep writing inline, as they did, until they continue as new.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import (
        ActivityName,
        DestroyedInstance,
        RecordInstanceInput,
        RecordInstancesDestroyedInput,
        RecordResult,
        RecordStateInput,
    )
    from core.contracts.errors import ErrorType
    from core.contracts.events import EventType
    from core.contracts.hibernation import RecordConfigInput
    from core.contracts.machine import InstanceInfo, LifecyclePolicy
    from core.contracts.records import PendingEvent, PendingRecord
    from core.contracts.states import MachineState
    from core.contracts.workflow import MachineSnapshot
    from core.search_attributes import MACHINE_STATE
    from workflows.machine import activities
    from workflows.machine.deadlines import Deadlines
    from workflows.machine.outbox import Outbox
    from workflows.machine.transitions import Action, is_allowed, rejection

S = MachineState
OUTBOX_PATCH = "event-outbox"
LEAN_BOOT_PATCH = "lean-boot"
ON_START_PATCH = "on-start"
IDLE_AFTER_BOOT_PATCH = "idle-after-boot"

# Told of every transition (the state before, the state after), before it is recorded.
OnTransition = Callable[[MachineState, MachineState], None]
# Run after every boot, before the machine is running; a reason to show, or None.
AfterBoot = Callable[[str], Awaitable[str | None]]
# Run on a freshly rented instance once it answers SSH; why it cannot be used, or None.
OnReady = Callable[[], Awaitable[str | None]]


def failure(err: ActivityError) -> tuple[str | None, str]:
    """The error type and a readable message of a failed activity; re-raises a cancellation."""
    if is_cancelled_exception(err):
        raise asyncio.CancelledError from err
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type, cause.message
    if isinstance(cause, ActivityTimeout):
        kind = cause.type.name.lower() if cause.type else "timeout"
        return ErrorType.TIMEOUT, f"timed out ({kind})"
    return None, str(cause or err)


def reject(problem: str, error_type: ErrorType = ErrorType.INVALID_TRANSITION) -> NoReturn:
    raise ApplicationError(problem, type=error_type, non_retryable=True)


@dataclass
class Hooks:
    """What capabilities add to every transition and boot (serverless and failover use them
    too: a gateway reopened after every boot, a standby dropped on leaving a state)."""

    on_transition: list[OnTransition] = field(default_factory=list)
    after_boot: list[AfterBoot] = field(default_factory=list)
    on_ready: list[OnReady] = field(default_factory=list)
    # The idle-since time the status projection shows (idleness provides it).
    idle_since: Callable[[], datetime | None] = lambda: None
    # The instance the user reaches now (the standby while the machine is on it); None: the
    # machine's own instance.
    serving_instance: Callable[[], InstanceInfo | None] | None = None
    # Idle time after which the machine moves to its standby instead of sleeping (None: it
    # does not).
    idle_migrate_seconds: Callable[[], int | None] = lambda: None
    # Told at once when a destroy is asked for; run after a destroy removed the instances.
    on_destroy_requested: list[Callable[[], None]] = field(default_factory=list)
    after_destroy: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Run once a hibernate's snapshot is committed and the instance destroyed.
    after_hibernate: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class MachineKernel:
    def __init__(self, snapshot: MachineSnapshot) -> None:
        self.s = snapshot
        # One operation at a time: every handler section that awaits an activity holds it.
        self.lock = asyncio.Lock()
        # Inline config writes (runs before the outbox) go out in the order accepted, without
        # waiting for a hibernate or a wake that holds the main lock.
        self.config_lock = asyncio.Lock()
        # The boot or action under way, which a destroy cancels.
        self._cancellable_task: asyncio.Task[None] | None = None
        self.destroy_requested = snapshot.state.is_ending()
        self.deadlines = Deadlines()
        self.hooks = Hooks()
        self.outbox = Outbox(snapshot)
        self.lean_boot = False  # decided in begin()
        # Work runs beside the lock's (the standby's task): reads are then full activities, as
        # a local activity resolved among other coroutines' commands replays out of order.
        self.concurrent_work = False
        self.runs_on_start = False  # decided in begin()

    @property
    def uses_outbox(self) -> bool:
        """Whether this run records through the outbox: decided at the run's first record (the
        SDK keeps the answer for the whole run), never in a validator or a query."""
        return workflow.patched(OUTBOX_PATCH)

    def begin(self) -> None:
        """The run's first step: which behaviours this run has (see CONTRIBUTING.md)."""
        # Before the outbox, a moved agent deadline did not wake the loop (it was seen only
        # when the loop next re-armed), so a report due after a start could go unnoticed.
        self.deadlines.set_wakes("agent", self.uses_outbox)
        # Before this patch: an install's end wiped a report that arrived while it ran (an
        # agent that starts fast reports before its install returns, and the API signals only
        # transitions, so the agent stayed "unknown", then was taken as offline); the policy
        # and the owner's keys were read by full activities (two round trips through the
        # server per boot); and a transition to the same state upserted its search attribute.
        self.lean_boot = workflow.patched(LEAN_BOOT_PATCH)
        # A machine with an on-start runs it after every boot. Asked only of those, so other
        # machines' histories carry no marker; no run before it had an on-start.
        self.runs_on_start = self.s.spec.on_start is not None and workflow.patched(ON_START_PATCH)

    @property
    def reads_locally(self) -> bool:
        return self.lean_boot and not self.concurrent_work

    @property
    def policy(self) -> LifecyclePolicy:
        assert self.s.policy is not None
        return self.s.policy

    async def answered(self) -> None:
        """Before an update answers: what it recorded is written, so that what the caller reads
        next (the API's projection) is current. The action itself is done by then: while the
        database is out only the answer waits, never the provider call."""
        if self.uses_outbox:
            await self.outbox.written(self.outbox.last_number)

    async def ready(self) -> None:
        """Wait until the policy is read (the run's first activity)."""
        await workflow.wait_condition(lambda: self.s.policy is not None)

    # --- actions -----------------------------------------------------------------------

    def validate(self, action: Action) -> None:
        problem = rejection(action, self.s.state)
        if problem is None and self.destroy_requested and action is not Action.DESTROY:
            problem = "machine is being destroyed"
        if problem is not None:
            reject(problem)

    def request_destroy(self) -> None:
        self.destroy_requested = True
        if self._cancellable_task is not None:
            self._cancellable_task.cancel()
        for hook in self.hooks.on_destroy_requested:
            hook()

    def stop_if_destroyed(self) -> None:
        """End the work under way when a destroy was asked for. The destroy cancels that work,
        but a cancel that reaches an activity as it completes is absorbed by its result (the
        SDK waits for the activity's outcome), so every loop that rents or waits looks too."""
        if self.destroy_requested and self._cancellable_task is not None:
            raise asyncio.CancelledError

    async def cancellable(self, work: Callable[[], Awaitable[object]]) -> None:
        """Run `work` so that a destroy can cancel it; a cancellation caused by the destroy
        ends it quietly, any other (the workflow's own) goes on up."""

        async def run_work() -> None:
            await work()

        task = asyncio.create_task(run_work())
        self._cancellable_task = task
        try:
            await task
        except asyncio.CancelledError:
            if not self.destroy_requested:
                raise
        finally:
            self._cancellable_task = None

    async def guarded(self, what: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work`; an activity that failed for good puts the machine in error, with why."""
        try:
            await work()
        except ActivityError as err:
            error_type, message = failure(err)
            if error_type == ErrorType.INSTANCE_GONE:
                # The next start provisions a new instance instead of reviving a lost one.
                self.s.instance = None
                message += "; start the machine again to provision a new instance"
            if what == Action.DESTROY:
                self.destroy_requested = False  # the user may try again
            await self.transition(S.ERROR, EventType.ERROR, f"{what} failed: {message}")

    def require_instance(self) -> InstanceInfo:
        if self.s.instance is None:
            reject("machine has no instance")
        return self.s.instance

    def require_serving(self) -> InstanceInfo:
        """The instance that holds the workspace now (the standby while on it)."""
        serving = self.serving_instance()
        if serving is None:
            reject("machine has no instance")
        return serving

    # --- state and records --------------------------------------------------------------

    async def transition(
        self,
        state: MachineState,
        event_type: EventType,
        reason: str | None = None,
        *,
        snapshot_id: str | None = None,
        gpu_utilization: float | None = None,
    ) -> None:
        s = self.s
        before = s.state
        if not is_allowed(before, state):
            # Never stop a machine's life (a destroy may be under way) over the table: say so.
            workflow.logger.error("transition %s -> %s is not in the table", before, state)
        s.state = state
        s.state_since = workflow.now()
        for hook in self.hooks.on_transition:
            hook(before, state)
        s.reason = reason
        self.deadlines.check()
        if not (self.lean_boot and before is state):
            workflow.upsert_search_attributes([MACHINE_STATE.value_set(state.value)])
        if gpu_utilization is None and state.keeps_idleness():
            gpu_utilization = s.agent.gpu_utilization
        await self.record_event(
            event_type, reason, snapshot_id=snapshot_id, gpu_utilization=gpu_utilization
        )

    async def record_event(
        self,
        event_type: EventType,
        reason: str | None,
        *,
        snapshot_id: str | None = None,
        gpu_utilization: float | None = None,
    ) -> None:
        s = self.s
        # Numbered before the write, so a retried write finds the event it already made.
        seq = s.counters["events"] = s.counters.get("events", 0) + 1
        idle_since = self.hooks.idle_since() if s.state is S.IDLE else None
        if self.uses_outbox:
            serving = self.serving_instance()
            event = PendingEvent(
                seq=seq,
                event_type=event_type,
                state=s.state,
                at=workflow.now(),
                reason=reason,
                instance=replace(serving) if serving else None,
                gpu_utilization=gpu_utilization,
                snapshot_id=snapshot_id,
                idle_since=idle_since,
            )
            self.outbox.add(PendingRecord(number=0, event=event))
            return
        await activities.call(
            ActivityName.RECORD_STATE,
            RecordStateInput(
                machine_id=s.machine_id,
                owner_id=s.owner_id,
                spec=s.spec,
                seq=seq,
                event_type=event_type,
                state=s.state,
                reason=reason,
                instance=s.instance,
                gpu_utilization=gpu_utilization,
                snapshot_id=snapshot_id,
                idle_since=idle_since,
            ),
            RecordResult,
            s.policy,
        )

    def serving_instance(self) -> InstanceInfo | None:
        if self.hooks.serving_instance is not None:
            return self.hooks.serving_instance()
        return self.s.instance

    async def record_instance(self, instance: InstanceInfo) -> None:
        if self.uses_outbox:
            self.outbox.add(PendingRecord(number=0, instance_created=replace(instance)))
            return
        await activities.call(
            ActivityName.RECORD_INSTANCE,
            RecordInstanceInput(machine_id=self.s.machine_id, instance=instance),
            RecordResult,
            self.s.policy,
        )

    async def record_destroyed(
        self, instances: list[DestroyedInstance], provider: str | None = None
    ) -> None:
        if self.uses_outbox:
            self.outbox.add(
                PendingRecord(number=0, instances_destroyed=instances, destroyed_provider=provider)
            )
            return
        await activities.call(
            ActivityName.RECORD_INSTANCES_DESTROYED,
            RecordInstancesDestroyedInput(
                machine_id=self.s.machine_id, provider=self.s.spec.provider, instances=instances
            ),
            RecordResult,
            self.s.policy,
        )

    async def record_config(self) -> None:
        s = self.s
        if self.uses_outbox:
            self.outbox.add(PendingRecord(number=0, config=replace(s.config)))
            return
        async with self.config_lock:
            await activities.call(
                ActivityName.RECORD_CONFIG,
                RecordConfigInput(machine_id=s.machine_id, config=s.config),
                RecordResult,
                s.policy,
            )
