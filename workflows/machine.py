"""MachineWorkflow: one long-lived workflow per machine, from create to destroy.

Shape (after samples-python `message_passing/safe_message_handlers`): the whole state is one
`MachineSnapshot`, carried across continue-as-new; update handlers check their transition in a
validator before anything is recorded, then do their work under one lock; a destroy cancels a
boot in progress and then destroys every instance carrying the machine's label prefix.

Every boot ends by installing the agent (a failed install leaves the machine running, with the
reason). The agent's transitions arrive as `agent_report` signals; an agent that goes offline,
or never reports after its install, is re-installed, at most once per
`policy.agent_reinstall_seconds`, while the machine is up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    is_cancelled_exception,
)
from temporalio.exceptions import (
    TimeoutError as ActivityTimeout,
)

with workflow.unsafe.imports_passed_through():
    from core.contracts import instance_label
    from core.contracts.activities import (
        ActivityName,
        AttachKeysInput,
        DestroyedInstance,
        DestroyInstancesInput,
        LifecyclePolicyInput,
        OwnerKeysInput,
        ProvisionInput,
        RecordInstanceInput,
        RecordInstancesDestroyedInput,
        RecordStateInput,
    )
    from core.contracts.agent import AgentReport, InstallAgentInput
    from core.contracts.errors import ErrorType
    from core.contracts.hibernation import (
        ConfigureInput,
        ConfigureResult,
        HibernateInput,
        HibernateResult,
        PreHibernateInput,
        RecordConfigInput,
        RestoreDone,
        RestoreInput,
        SnapshotInput,
        SnapshotTaken,
        WakeInput,
        WakeResult,
        apply_config,
        config_problem,
    )
    from core.contracts.machine import (
        ActionInput,
        ActionResult,
        InstanceInfo,
        LifecyclePolicy,
        MachineSpec,
        SshKeysChanged,
    )
    from core.contracts.snapshots import RestoreRequest, RestoreResult, SnapshotRequest
    from core.contracts.snapshots import SnapshotResult as SnapshotResultT
    from core.contracts.states import MachineState
    from core.contracts.workflow import MachineInput, MachineResult, MachineSnapshot
    from core.search_attributes import GPU_NAME, MACHINE_OWNER, MACHINE_STATE
    from workflows import activity_calls as calls
    from workflows.transitions import TARGET, UP, Action, is_joining, rejection

S = MachineState

# States whose idleness clock survives them (a failed hibernate goes back to idle).
KEEPS_IDLENESS = UP | {S.HIBERNATING}
# An agent with no report for this many intervals after its install is taken as offline.
FIRST_REPORT_INTERVALS = 3


def _failure(err: ActivityError) -> tuple[str | None, str]:
    """The error type and a readable message of a failed activity; re-raises a cancellation."""
    if is_cancelled_exception(err):
        raise asyncio.CancelledError from err
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type, cause.message
    if isinstance(cause, ActivityTimeout):
        return "Timeout", f"timed out ({cause.type.name.lower() if cause.type else 'timeout'})"
    return None, str(cause or err)


@dataclass
class _NotRented:
    """Why provisioning found no instance; `no_offer` when nothing matched at all."""

    problem: str
    no_offer: bool = False


@workflow.defn
class MachineWorkflow:
    @workflow.init
    def __init__(self, input: MachineInput) -> None:
        self._snapshot = input.carried or MachineSnapshot(
            machine_id=input.machine_id, owner_id=input.owner_id, spec=input.spec
        )
        # One operation at a time: every handler section that awaits an activity holds it.
        self._lock = asyncio.Lock()
        # The boot or action under way, which a destroy cancels.
        self._cancellable_task: asyncio.Task[None] | None = None
        self._destroy_requested = self._snapshot.state in (S.DESTROYING, S.DESTROYED)
        # Config writes go out in the order they were accepted, without waiting for a
        # hibernate or a wake that holds the main lock.
        self._config_lock = asyncio.Lock()
        # Bumped whenever a deadline moves, so the main loop re-arms its timer.
        self._deadlines_moved = 0
        self._armed: tuple[datetime | None, ...] = ()

    # --- run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: MachineInput) -> MachineResult:
        s = self._snapshot
        workflow.upsert_search_attributes(
            [
                MACHINE_STATE.value_set(s.state.value),
                MACHINE_OWNER.value_set(s.owner_id),
                GPU_NAME.value_set(s.spec.gpu_name or "cpu"),
            ]
        )
        try:
            # Held from the first activation on, so that a message arriving with the start
            # waits for the policy and the first boot instead of racing them.
            async with self._lock:
                if s.policy is None:
                    s.policy = await calls.lifecycle_policy(
                        LifecyclePolicyInput(machine_id=s.machine_id)
                    )
                if input.carried is None and not self._destroy_requested:
                    await self._cancellable(lambda: self._guarded("create", self._create))
        except asyncio.CancelledError:
            if not self._destroy_requested:
                raise  # the workflow itself was cancelled

        while True:
            try:
                await workflow.wait_condition(
                    self._loop_wakes(self._deadlines_moved),
                    timeout=self._until_next_deadline(),
                )
            except TimeoutError:
                pass  # a deadline passed: checked just below
            if self._agent_work_due():
                await self._agent_upkeep()
                continue
            if self._idle_work() is not None:
                await self._idle_upkeep()
                continue
            if not (s.state is S.DESTROYED or self._should_continue_as_new()):
                continue
            # Never abandon an update half done; a destroy may arrive while we wait, so the
            # terminal state is checked again afterwards.
            await workflow.wait_condition(workflow.all_handlers_finished)
            if s.state is S.DESTROYED:
                return MachineResult(machine_id=s.machine_id, state=s.state)
            if self._should_continue_as_new():
                workflow.logger.info("continuing as new with %d events", s.counters["events"])
                workflow.continue_as_new(
                    MachineInput(
                        machine_id=s.machine_id, owner_id=s.owner_id, spec=s.spec, carried=s
                    )
                )

    def _loop_wakes(self, moved: int) -> Callable[[], bool]:
        """When the main loop has something to do (or a deadline moved since `moved`)."""
        s = self._snapshot
        return lambda: (
            s.state is S.DESTROYED
            or self._should_continue_as_new()
            or self._agent_work_due()
            or self._idle_work() is not None
            or self._deadlines_moved != moved
        )

    def _until_next_deadline(self) -> timedelta | None:
        """How long until the next deadline ahead. One already passed was acted on when it
        passed (the loop checks its work after every timer and message); waiting on it again
        would wake the workflow every second for as long as a machine stays idle."""
        now = workflow.now()
        deadlines = self._idle_deadlines()
        if self._agent_expected():
            deadlines += self._agent_deadlines()
        ahead = [t for t in deadlines if t is not None and t > now]
        if not ahead:
            return None
        return max(min(ahead) - now, timedelta(seconds=1))

    def _should_continue_as_new(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

    # --- query and messages ---------------------------------------------------------------

    @workflow.query
    def state(self) -> MachineSnapshot:
        return self._snapshot

    @workflow.signal
    async def ssh_keys_changed(self, input: SshKeysChanged) -> None:
        await workflow.wait_condition(lambda: self._snapshot.policy is not None)
        async with self._lock:
            if self._snapshot.state not in UP or self._destroy_requested:
                return  # a start or a new instance attaches the current keys anyway
            try:
                await self._attach_keys()
            except ActivityError as err:
                _, message = _failure(err)
                workflow.logger.warning("attaching changed SSH keys failed: %s", message)

    @workflow.signal
    def agent_report(self, report: AgentReport) -> None:
        """An agent transition (from the API) or silence (from the fleet monitor). Idempotent:
        a report no newer than the last one applied changes nothing."""
        s = self._snapshot
        agent = s.agent
        if agent.last_report_at is not None and report.at <= agent.last_report_at:
            return
        agent.last_report_at = report.at
        agent.online = report.online
        agent.gpu_busy = report.gpu_busy
        agent.gpu_utilization = report.gpu_utilization
        agent.active_users = report.active_users
        agent.last_input_at = report.last_input_at
        if report.online:
            agent.report_due_by = agent.reinstall_at = None
            agent.install_error = None
        elif self._agent_expected() and agent.reinstall_at is None:
            agent.reinstall_at = self._earliest_reinstall()
        h = s.hibernation
        if self._is_busy(report):
            h.idle_since = None
        elif h.idle_since is None and s.state in KEEPS_IDLENESS:
            h.idle_since = report.at
        self._recompute_deadlines()

    @workflow.update
    async def stop(self, input: ActionInput) -> ActionResult:
        return await self._act(Action.STOP, input, self._stop)

    @stop.validator
    def _validate_stop(self, input: ActionInput) -> None:
        self._validate(Action.STOP)

    @workflow.update
    async def start(self, input: ActionInput) -> ActionResult:
        return await self._act(Action.START, input, self._start)

    @start.validator
    def _validate_start(self, input: ActionInput) -> None:
        self._validate(Action.START)

    @workflow.update
    async def restart(self, input: ActionInput) -> ActionResult:
        return await self._act(Action.RESTART, input, self._restart)

    @restart.validator
    def _validate_restart(self, input: ActionInput) -> None:
        self._validate(Action.RESTART)

    @workflow.update
    async def destroy(self, input: ActionInput) -> ActionResult:
        self._destroy_requested = True
        if self._cancellable_task is not None:
            self._cancellable_task.cancel()
        return await self._act(Action.DESTROY, input, self._destroy)

    @destroy.validator
    def _validate_destroy(self, input: ActionInput) -> None:
        self._validate(Action.DESTROY)

    @workflow.update
    async def configure(self, input: ConfigureInput) -> ConfigureResult:
        s = self._snapshot
        # Applied in the activation the validator accepted it in: no later message sees the
        # old config.
        s.config = apply_config(s.config, input)
        self._recompute_deadlines()
        async with self._config_lock:
            await calls.record_config(RecordConfigInput(machine_id=s.machine_id, config=s.config))
        return ConfigureResult(machine_id=s.machine_id, config=s.config)

    @configure.validator
    def _validate_configure(self, input: ConfigureInput) -> None:
        if self._snapshot.state in (S.DESTROYING, S.DESTROYED) or self._destroy_requested:
            raise ApplicationError(
                f"machine is {self._snapshot.state}",
                type=ErrorType.INVALID_TRANSITION,
                non_retryable=True,
            )
        problem = config_problem(input)
        if problem is not None:
            raise ApplicationError(problem, type=ErrorType.INVALID_INPUT, non_retryable=True)

    @workflow.update
    async def hibernate(self, input: HibernateInput) -> HibernateResult:
        s = self._snapshot
        reason = input.reason or "hibernate requested"
        await self._act(
            Action.HIBERNATE, ActionInput(reason=reason), lambda why: self._hibernate(why or reason)
        )
        assert s.hibernation.snapshot_id is not None
        return HibernateResult(
            machine_id=s.machine_id,
            state=s.state,
            snapshot_id=s.hibernation.snapshot_id,
            instance_destroyed=s.instance is None,
        )

    @hibernate.validator
    def _validate_hibernate(self, input: HibernateInput) -> None:
        self._validate(Action.HIBERNATE)

    @workflow.update
    async def wake(self, input: WakeInput) -> WakeResult:
        s = self._snapshot
        requested = workflow.now()
        await self._act(
            Action.WAKE, ActionInput(reason=input.reason), lambda _why: self._wake(input)
        )
        assert s.instance is not None and s.hibernation.snapshot_id is not None
        return WakeResult(
            machine_id=s.machine_id,
            state=s.state,
            snapshot_id=s.hibernation.snapshot_id,
            instance=s.instance,
            seconds=(workflow.now() - requested).total_seconds(),
        )

    @wake.validator
    def _validate_wake(self, input: WakeInput) -> None:
        self._validate(Action.WAKE)
        if input.max_price is not None and input.max_price <= 0:
            raise ApplicationError(
                "max_price must be above 0", type=ErrorType.INVALID_INPUT, non_retryable=True
            )

    @workflow.update
    async def snapshot(self, input: SnapshotInput) -> SnapshotTaken:
        s = self._snapshot
        await workflow.wait_condition(lambda: s.policy is not None)
        async with self._lock:
            self._validate(Action.SNAPSHOT)  # again: the state may have changed meanwhile
            try:
                result = await self._take_snapshot()
            except ActivityError as err:
                _, message = _failure(err)
                await self._record_event("snapshot_failed", message)
                raise ApplicationError(
                    f"snapshot failed: {message}", type=ErrorType.ACTION_FAILED, non_retryable=True
                ) from None
            await self._record_event("snapshot_taken", input.reason, snapshot_id=result.snapshot_id)
        return SnapshotTaken(
            machine_id=s.machine_id,
            snapshot_id=result.snapshot_id,
            root_hash=result.root_hash,
            logical_bytes=result.logical_bytes,
            uploaded_bytes=result.uploaded_bytes,
        )

    @snapshot.validator
    def _validate_snapshot(self, input: SnapshotInput) -> None:
        self._validate(Action.SNAPSHOT)

    @workflow.update
    async def restore(self, input: RestoreInput) -> RestoreDone:
        s = self._snapshot
        await workflow.wait_condition(lambda: s.policy is not None)
        async with self._lock:
            self._validate(Action.RESTORE)  # again: the state may have changed meanwhile
            snapshot_id = input.snapshot_id or s.hibernation.snapshot_id
            assert snapshot_id is not None
            try:
                restored = await self._restore_snapshot(snapshot_id)
            except ActivityError as err:
                _, message = _failure(err)
                await self._record_event("restore_failed", message, snapshot_id=snapshot_id)
                raise ApplicationError(
                    f"restore failed: {message}", type=ErrorType.ACTION_FAILED, non_retryable=True
                ) from None
            reason = f"{input.reason}: {restored.summary()}" if input.reason else restored.summary()
            await self._record_event("restored", reason, snapshot_id=snapshot_id)
        return RestoreDone(
            machine_id=s.machine_id, snapshot_id=snapshot_id, root_hash=restored.root_hash
        )

    @restore.validator
    def _validate_restore(self, input: RestoreInput) -> None:
        self._validate(Action.RESTORE)
        if input.snapshot_id is None and self._snapshot.hibernation.snapshot_id is None:
            raise ApplicationError(
                "machine has no snapshot yet; take one first",
                type=ErrorType.INVALID_TRANSITION,
                non_retryable=True,
            )

    # --- actions --------------------------------------------------------------------------

    def _validate(self, action: Action) -> None:
        problem = rejection(action, self._snapshot.state)
        if problem is None and self._destroy_requested and action is not Action.DESTROY:
            problem = "machine is being destroyed"
        if problem is not None:
            raise ApplicationError(problem, type=ErrorType.INVALID_TRANSITION, non_retryable=True)

    async def _act(
        self, action: Action, input: ActionInput, work: Callable[[str | None], Awaitable[None]]
    ) -> ActionResult:
        s = self._snapshot
        # The handler starts in the activation its validator ran in, so this is the state the
        # request was accepted in.
        joined = is_joining(action, s.state)
        await workflow.wait_condition(lambda: s.policy is not None)
        async with self._lock:
            if not joined and not (s.state is TARGET[action] and action is not Action.RESTART):
                if self._destroy_requested and action is not Action.DESTROY:
                    raise ApplicationError(
                        "machine is being destroyed", type=ErrorType.SUPERSEDED, non_retryable=True
                    )
                problem = rejection(action, s.state)
                if problem is not None:  # the state changed while this request waited its turn
                    raise ApplicationError(
                        problem, type=ErrorType.INVALID_TRANSITION, non_retryable=True
                    )
                if action is Action.DESTROY:
                    await self._guarded(action, lambda: work(input.reason))
                else:
                    try:
                        await self._cancellable(
                            lambda: self._guarded(action, lambda: work(input.reason))
                        )
                    except asyncio.CancelledError:
                        if not self._destroy_requested:
                            raise
        if action is not Action.DESTROY and self._destroy_requested:
            raise ApplicationError(
                "machine is being destroyed", type=ErrorType.SUPERSEDED, non_retryable=True
            )
        if s.state is not TARGET[action]:
            raise ApplicationError(
                f"could not {action} the machine: {s.reason or 'unknown reason'}",
                type=ErrorType.ACTION_FAILED,
                non_retryable=True,
            )
        return ActionResult(
            machine_id=s.machine_id,
            state=s.state,
            instance_id=s.instance.instance_id if s.instance else None,
        )

    async def _cancellable(self, work: Callable[[], Awaitable[object]]) -> None:
        async def run_work() -> None:
            await work()

        task = asyncio.create_task(run_work())
        self._cancellable_task = task
        try:
            await task
        finally:
            self._cancellable_task = None

    async def _guarded(self, what: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work`; an activity that failed for good puts the machine in error, with why."""
        try:
            await work()
        except ActivityError as err:
            error_type, message = _failure(err)
            if error_type == ErrorType.INSTANCE_GONE:
                # The next start provisions a new instance instead of reviving a lost one.
                self._snapshot.instance = None
                message += "; start the machine again to provision a new instance"
            if what == Action.DESTROY:
                self._destroy_requested = False  # the user may try again
            await self._transition(S.ERROR, "error", f"{what} failed: {message}")

    async def _stop(self, reason: str | None) -> None:
        instance = self._require_instance()
        await self._transition(S.STOPPING, "stop_requested", reason)
        await calls.instance_action(ActivityName.STOP_INSTANCE, instance, self._policy)
        await self._transition(S.STOPPED, "stopped", reason)

    async def _start(self, reason: str | None) -> None:
        await self._transition(S.STARTING, "start_requested", reason)
        instance = self._snapshot.instance
        if instance is None:
            await self._provision()
            return
        await calls.instance_action(ActivityName.START_INSTANCE, instance, self._policy)
        await self._attach_keys()
        await self._boot("start")

    async def _restart(self, reason: str | None) -> None:
        instance = self._require_instance()
        await self._transition(S.RESTARTING, "restart_requested", reason)
        await calls.instance_action(ActivityName.REBOOT_INSTANCE, instance, self._policy)
        await self._boot("restart")

    async def _boot(self, what: str) -> None:
        """Wait for the current instance to answer SSH: running, or error with the reason."""
        problem = await self._wait_until_ready()
        if problem is None:
            await self._up(what, "running")
        else:
            await self._transition(S.ERROR, "error", f"{what} failed: {problem}")

    async def _destroy(self, reason: str | None) -> None:
        s = self._snapshot
        await self._transition(S.DESTROYING, "destroy_requested", reason)
        await self._destroy_all()
        s.instance = None
        s.boot_deadline = None
        await self._transition(S.DESTROYED, "destroyed", reason)

    def _require_instance(self) -> InstanceInfo:
        instance = self._snapshot.instance
        if instance is None:
            raise ApplicationError(
                "machine has no instance", type=ErrorType.INVALID_TRANSITION, non_retryable=True
            )
        return instance

    # --- provisioning ---------------------------------------------------------------------

    async def _create(self) -> None:
        await self._transition(S.STARTING, "provisioning")
        await self._provision()

    async def _provision(self) -> None:
        """Provision for a create, or a start of a machine whose instance is gone: running, or
        error with the reason (a hibernated workspace is restored on the way)."""
        outcome = await self._rent(self._snapshot.spec)
        if outcome is not None:
            await self._transition(S.ERROR, "error", outcome.problem)
            return
        await self._up("create", "running")

    async def _rent(self, spec: MachineSpec) -> _NotRented | None:
        """Rent the cheapest offer matching `spec` and wait until it answers SSH (and, for a
        hibernated machine, holds its workspace again); None when it does. An instance that
        fails or misses its boot deadline is destroyed and the next attempt goes elsewhere."""
        s = self._snapshot
        policy = self._policy
        failures: list[str] = []
        for _ in range(policy.provision_attempts):
            # Saved before the activity runs: a retried create reuses this label.
            s.attempt += 1
            label = instance_label(s.machine_id, s.attempt)
            try:
                instance = await calls.provision_instance(
                    ProvisionInput(
                        machine_id=s.machine_id,
                        spec=spec,
                        label=label,
                        excluded_offers=list(s.failed_offers),
                    ),
                    policy,
                )
            except ActivityError as err:
                error_type, message = _failure(err)
                no_offer = error_type == ErrorType.NO_MATCHING_OFFER
                if not no_offer:
                    await self._destroy_attempt(label)  # a create may have landed
                return _NotRented(message, no_offer=no_offer)
            s.instance = instance
            await calls.record_instance(
                RecordInstanceInput(machine_id=s.machine_id, instance=instance)
            )
            try:
                await self._attach_keys()
                problem = await self._wait_until_ready()
            except ActivityError as err:
                _, problem = _failure(err)
            if problem is None and s.hibernation.needs_restore:
                problem = await self._restore_workspace()
            if problem is None:
                return None
            where = instance.geolocation or "unknown location"
            failures.append(f"attempt {s.attempt} ({instance.gpu_name}, {where}): {problem}")
            if instance.offer_id:
                s.failed_offers.append(instance.offer_id)
            await self._record_event("boot_failed", failures[-1])
            await self._destroy_attempt(label)
            s.instance = None
            s.boot_deadline = None
        return _NotRented(
            f"no instance came up after {len(failures)} attempts: " + "; ".join(failures)
        )

    async def _wait_until_ready(self) -> str | None:
        """None once the instance answers SSH; otherwise why it did not by the boot deadline."""
        s = self._snapshot
        policy = self._policy
        deadline = workflow.now() + timedelta(seconds=policy.boot_timeout_seconds)
        s.boot_deadline = deadline
        detail = "no answer yet"
        while True:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return f"not up within {policy.boot_timeout_seconds} s ({detail})"
            assert s.instance is not None
            try:
                result = await calls.wait_until_ready(s.instance, deadline, policy)
            except ActivityError as err:
                error_type, message = _failure(err)
                if error_type == "Timeout":
                    continue  # the deadline check above says so
                return message
            s.instance = result.instance
            if result.ready:
                s.boot_deadline = None
                return None
            detail = result.detail or detail
            pause = min(timedelta(seconds=policy.boot_poll_seconds), deadline - workflow.now())
            if pause > timedelta(0):
                await workflow.sleep(pause)

    async def _destroy_all(self) -> None:
        """Destroy every instance carrying the machine's label prefix and record them gone,
        the current one included even when a destroy that landed while a worker died left the
        retried activity nothing to find (otherwise it would look billing forever)."""
        s = self._snapshot
        destroyed = await calls.destroy_instances(
            DestroyInstancesInput(provider=s.spec.provider, machine_id=s.machine_id),
            self._policy,
        )
        gone = list(destroyed.destroyed)
        known = s.instance
        if known is not None and all(d.instance_id != known.instance_id for d in gone):
            gone.append(DestroyedInstance(instance_id=known.instance_id, label=known.label))
        await calls.record_instances_destroyed(
            RecordInstancesDestroyedInput(
                machine_id=s.machine_id, provider=s.spec.provider, instances=gone
            )
        )

    async def _destroy_attempt(self, label: str) -> None:
        s = self._snapshot
        destroyed = await calls.destroy_instances(
            DestroyInstancesInput(provider=s.spec.provider, machine_id=s.machine_id, label=label),
            self._policy,
        )
        if destroyed.destroyed:
            await calls.record_instances_destroyed(
                RecordInstancesDestroyedInput(
                    machine_id=s.machine_id,
                    provider=s.spec.provider,
                    instances=destroyed.destroyed,
                )
            )

    # --- idleness ---------------------------------------------------------------------------

    def _is_busy(self, report: AgentReport) -> bool:
        """Fails safe: an agent offline or a GPU unread is busy; so is recent SSH input."""
        if not report.online:
            return True
        if report.busy is not None:
            return report.busy
        if report.gpu_busy is not False:
            return True
        interval = timedelta(seconds=self._policy.agent_interval_seconds)
        return report.last_input_at is not None and report.last_input_at >= report.at - interval

    def _idle_from(self) -> datetime | None:
        """When idleness starts to count: idle since then, and past the setup grace period."""
        h = self._snapshot.hibernation
        if h.idle_since is None or self._snapshot.state not in KEEPS_IDLENESS:
            return None
        if h.grace_until is not None and h.grace_until > h.idle_since:
            return h.grace_until
        return h.idle_since

    def _recompute_deadlines(self) -> None:
        """Absolute deadlines from the state: called after every message and transition."""
        s = self._snapshot
        h = s.hibernation
        config = s.config
        start = self._idle_from()
        hibernate_at = None
        if start is not None and config.enabled:
            hibernate_at = start + timedelta(minutes=config.pause_after_minutes)
            if h.retry_at is not None:
                hibernate_at = max(hibernate_at, h.retry_at)
        delete_at = None
        if s.state is S.HIBERNATED and h.hibernated_at is not None:
            delete_at = h.hibernated_at + timedelta(minutes=config.delete_after_minutes)
        deadlines = (start, hibernate_at, delete_at)
        if deadlines != self._armed:
            h.hibernate_at, h.delete_at = hibernate_at, delete_at
            self._armed = deadlines
            self._deadlines_moved += 1

    def _idle_deadlines(self) -> list[datetime | None]:
        h = self._snapshot.hibernation
        return [self._idle_from(), h.hibernate_at, h.delete_at]

    def _idle_work(self) -> str | None:
        """What idleness asks for now: "idle", "busy", "hibernate", "delete", or nothing."""
        s = self._snapshot
        if self._destroy_requested or s.policy is None:
            return None
        h = s.hibernation
        now = workflow.now()
        if s.state in UP:
            start = self._idle_from()
            if start is None or now < start:
                return "busy" if s.state is S.IDLE else None
            if s.state is S.RUNNING:
                return "idle"
            if h.hibernate_at is not None and now >= h.hibernate_at:
                return "hibernate"
        if s.state is S.HIBERNATED and h.delete_at is not None and now >= h.delete_at:
            return "delete"
        return None

    async def _idle_upkeep(self) -> None:
        async with self._lock:
            work = self._idle_work()  # again: the state may have changed while this waited
            s = self._snapshot
            if work == "idle":
                minutes = s.config.pause_after_minutes
                when = "" if not s.config.enabled else f"; hibernates in {minutes} min"
                await self._transition(S.IDLE, "idle_detected", f"no activity{when}")
            elif work == "busy":
                await self._transition(S.RUNNING, "activity_resumed")
            elif work == "hibernate":
                minutes = s.config.pause_after_minutes
                why = f"auto-hibernate: idle for {minutes} min"
                try:
                    await self._cancellable(
                        lambda: self._guarded("hibernate", lambda: self._hibernate(why))
                    )
                except asyncio.CancelledError:
                    if not self._destroy_requested:
                        raise
            elif work == "delete":
                h = s.hibernation
                await self._transition(
                    S.DELETED,
                    "deleted",
                    f"hibernated for {s.config.delete_after_minutes} min; "
                    f"snapshot {h.snapshot_id} kept",
                    snapshot_id=h.snapshot_id,
                )

    # --- hibernate and wake -----------------------------------------------------------------

    async def _hibernate(self, reason: str) -> None:
        """Hook, snapshot, and only once the snapshot is committed and verified, destroy the
        instance. Any failure before the destroy leaves the machine as it was, with why."""
        s = self._snapshot
        h = s.hibernation
        instance = self._require_instance()
        was = s.state
        await self._transition(S.HIBERNATING, "hibernating", reason)
        problem = await self._pre_hibernate_hook(instance)
        if problem is None:
            try:
                await self._take_snapshot()
            except ActivityError as err:
                _, message = _failure(err)
                problem = f"snapshot failed, nothing destroyed: {message}"
                await self._record_event("snapshot_failed", problem)
        if problem is not None:
            h.retry_at = workflow.now() + timedelta(
                seconds=self._policy.auto_hibernate_retry_seconds
            )
            await self._transition(was, "hibernate_failed", f"{problem}; the machine keeps running")
            return
        await self._destroy_all()
        s.instance = None
        s.boot_deadline = None
        h.needs_restore = True
        h.hibernated_at = workflow.now()
        h.idle_since = h.retry_at = None
        await self._transition(
            S.HIBERNATED,
            "hibernated",
            reason,
            snapshot_id=h.snapshot_id,
            gpu_utilization=s.agent.gpu_utilization,
        )

    async def _pre_hibernate_hook(self, instance: InstanceInfo) -> str | None:
        """Run the user's hook; why the hibernate must stop, or None to go on."""
        config = self._snapshot.config
        if config.pre_hibernate_command is None:
            return None
        try:
            result = await calls.run_pre_hibernate(
                PreHibernateInput(
                    machine_id=self._snapshot.machine_id,
                    instance=instance,
                    command=config.pre_hibernate_command,
                    timeout_seconds=config.pre_hibernate_timeout_seconds,
                )
            )
            ok, detail = result.ok, result.output or f"exit status {result.exit_status}"
            if not ok and result.exit_status is not None and result.output:
                detail = f"exit status {result.exit_status}: {result.output}"
        except ActivityError as err:
            ok, detail = False, _failure(err)[1]
        if ok:
            await self._record_event("pre_hibernate_done", detail or None)
            return None
        await self._record_event("pre_hibernate_failed", detail)
        if config.pre_hibernate_on_failure == "continue":
            return None
        return f"pre-hibernate command failed: {detail}"

    async def _take_snapshot(self) -> SnapshotResultT:
        """Snapshot the workspace; its id is chosen and saved first, so that a retry (or a
        worker restart) resumes the same snapshot instead of starting another."""
        s = self._snapshot
        h = s.hibernation
        instance = self._require_instance()
        if h.pending_snapshot_id is None:
            h.pending_snapshot_id = f"{s.machine_id}-{workflow.uuid4().hex[:12]}"
        assert instance.ssh_host is not None and instance.ssh_port is not None
        try:
            result = await calls.snapshot_workspace(
                SnapshotRequest(
                    snapshot_id=h.pending_snapshot_id,
                    owner_id=s.owner_id,
                    machine_id=s.machine_id,
                    ssh_host=instance.ssh_host,
                    ssh_port=instance.ssh_port,
                ),
                self._policy,
            )
        finally:
            h.pending_snapshot_id = None
        h.snapshot_id = result.snapshot_id
        return result

    async def _wake(self, input: WakeInput) -> None:
        """A new instance on any matching offer (the machine's region first, then any), the
        workspace restored from the snapshot, the agent back. No offer at all: the machine
        stays hibernated (or deleted), and the search is tried again a few times first."""
        s = self._snapshot
        was = s.state
        await self._transition(S.WAKING, "waking", input.reason)
        wanted = replace(
            s.spec,
            gpu_name=input.gpu_type or s.spec.gpu_name,
            region=input.region or s.spec.region,
            max_price=input.max_price if input.max_price is not None else s.spec.max_price,
        )
        specs = [wanted] if wanted.region is None else [wanted, replace(wanted, region=None)]
        policy = self._policy
        outcome: _NotRented | None = None
        for attempt in range(policy.wake_offer_attempts):
            if attempt:
                await workflow.sleep(timedelta(seconds=policy.wake_offer_retry_seconds))
            for spec in specs:
                outcome = await self._rent(spec)
                if outcome is None or not outcome.no_offer:
                    break
            if outcome is None or not outcome.no_offer:
                break
        if outcome is not None:
            problem = outcome.problem
            if outcome.no_offer:
                where = f"in {wanted.region}, then anywhere" if wanted.region else "anywhere"
                problem = (
                    f"no matching offer {where}, {policy.wake_offer_attempts} searches "
                    f"{policy.wake_offer_retry_seconds} s apart: {problem}"
                )
            await self._transition(
                was, "wake_failed", f"wake failed: {problem}", snapshot_id=s.hibernation.snapshot_id
            )
            return
        await self._up("wake", "woke")

    async def _restore_workspace(self) -> str | None:
        """Put the hibernated snapshot back on the new instance; None once done, else why."""
        h = self._snapshot.hibernation
        assert h.snapshot_id is not None
        try:
            restored = await self._restore_snapshot(h.snapshot_id)
        except ActivityError as err:
            return f"restore of snapshot {h.snapshot_id} failed: {_failure(err)[1]}"
        h.needs_restore = False
        h.hibernated_at = None
        await self._record_event("restored", restored.summary(), snapshot_id=h.snapshot_id)
        return None

    async def _restore_snapshot(self, snapshot_id: str) -> RestoreResult:
        s = self._snapshot
        instance = self._require_instance()
        assert instance.ssh_host is not None and instance.ssh_port is not None
        return await calls.restore_workspace(
            RestoreRequest(
                snapshot_id=snapshot_id,
                owner_id=s.owner_id,
                ssh_host=instance.ssh_host,
                ssh_port=instance.ssh_port,
            ),
            self._policy,
        )

    # --- the agent ------------------------------------------------------------------------

    async def _up(self, what: str, event_type: str = "running") -> None:
        """The instance answers SSH: install the agent, then the machine is running, with the
        reason when the agent could not be installed (the workload must not depend on it).
        Idleness counts only after a grace period for setup."""
        problem = await self._install_agent(f"installed after {what}")
        reason = None if problem is None else f"agent not installed: {problem}"
        h = self._snapshot.hibernation
        h.idle_since = h.retry_at = None
        h.grace_until = workflow.now() + timedelta(seconds=self._policy.idle_grace_seconds)
        await self._transition(S.RUNNING, event_type, reason)

    async def _install_agent(self, context: str) -> str | None:
        """Install (or re-install) the agent; None when it runs, else why not."""
        s = self._snapshot
        agent = s.agent
        assert s.instance is not None
        problem: str | None = None
        detail = ""
        try:
            result = await calls.install_agent(
                InstallAgentInput(machine_id=s.machine_id, instance=s.instance), self._policy
            )
        except ActivityError as err:
            _, problem = _failure(err)
        else:
            if not result.installed:
                problem = result.detail or "not installed"
            elif result.detail:
                detail = f": {result.detail}"
        now = workflow.now()
        agent.online = None
        if problem is None:
            agent.installed_at = now
            agent.install_error = agent.reinstall_at = None
            agent.report_due_by = now + timedelta(
                seconds=self._policy.agent_interval_seconds * FIRST_REPORT_INTERVALS
            )
        else:
            agent.install_error = problem
            agent.report_due_by = None
            agent.reinstall_at = now + timedelta(seconds=self._policy.agent_reinstall_seconds)
        if s.state in UP:  # a re-install: the running machine's reason follows the agent
            s.reason = None if problem is None else f"agent not installed: {problem}"
        if problem is None:
            await self._record_event("agent_installed", context + detail)
        else:
            await self._record_event("agent_install_failed", f"agent not installed: {problem}")
        return problem

    def _agent_expected(self) -> bool:
        """Whether an agent should be running (and looked after) now."""
        return self._snapshot.state in UP and not self._destroy_requested

    def _agent_work_due(self) -> bool:
        if not self._agent_expected():
            return False
        now = workflow.now()
        return any(t is not None and now >= t for t in self._agent_deadlines())

    def _agent_deadlines(self) -> list[datetime | None]:
        return [self._snapshot.agent.report_due_by, self._snapshot.agent.reinstall_at]

    def _why_reinstall(self) -> str:
        agent = self._snapshot.agent
        if agent.install_error is not None:
            return "the last install failed"
        heard_since_install = agent.last_report_at is not None and (
            agent.installed_at is None or agent.last_report_at > agent.installed_at
        )
        return "agent went offline" if heard_since_install else "agent never reported after install"

    def _earliest_reinstall(self) -> datetime:
        last = self._snapshot.agent.last_reinstall_at
        now = workflow.now()
        if last is None:
            return now
        return max(now, last + timedelta(seconds=self._policy.agent_reinstall_seconds))

    async def _agent_upkeep(self) -> None:
        """An agent deadline passed: a missing first report makes the agent offline; a due
        re-install runs (cancelled by a destroy, like a boot)."""
        async with self._lock:
            if not self._agent_work_due():
                return  # the state changed while this waited its turn
            agent = self._snapshot.agent
            now = workflow.now()
            if agent.report_due_by is not None and now >= agent.report_due_by:
                agent.report_due_by = None
                agent.online = False
                agent.reinstall_at = agent.reinstall_at or self._earliest_reinstall()
            assert agent.reinstall_at is not None
            if now < agent.reinstall_at:
                return
            why = self._why_reinstall()
            agent.reinstall_at = None
            agent.last_reinstall_at = now
            agent.reinstalls += 1
            try:
                await self._cancellable(lambda: self._install_agent(f"re-installed: {why}"))
            except asyncio.CancelledError:
                if not self._destroy_requested:
                    raise

    async def _attach_keys(self) -> None:
        s = self._snapshot
        assert s.instance is not None
        keys = await calls.owner_ssh_keys(OwnerKeysInput(owner_id=s.owner_id))
        await calls.attach_ssh_keys(
            AttachKeysInput(instance=s.instance, public_keys=keys.public_keys)
        )

    # --- state ----------------------------------------------------------------------------

    @property
    def _policy(self) -> LifecyclePolicy:
        assert self._snapshot.policy is not None
        return self._snapshot.policy

    async def _transition(
        self,
        state: MachineState,
        event_type: str,
        reason: str | None = None,
        *,
        snapshot_id: str | None = None,
        gpu_utilization: float | None = None,
    ) -> None:
        s = self._snapshot
        s.state = state
        s.state_since = workflow.now()
        if state not in UP:  # no agent is expected to report
            s.agent.report_due_by = s.agent.reinstall_at = None
        if state not in KEEPS_IDLENESS:
            s.hibernation.idle_since = None
        s.reason = reason
        self._recompute_deadlines()
        workflow.upsert_search_attributes([MACHINE_STATE.value_set(state.value)])
        if gpu_utilization is None and state in KEEPS_IDLENESS:
            gpu_utilization = s.agent.gpu_utilization
        await self._record_event(
            event_type, reason, snapshot_id=snapshot_id, gpu_utilization=gpu_utilization
        )

    async def _record_event(
        self,
        event_type: str,
        reason: str | None,
        *,
        snapshot_id: str | None = None,
        gpu_utilization: float | None = None,
    ) -> None:
        s = self._snapshot
        # Numbered before the write, so a retried write finds the event it already made.
        seq = s.counters["events"] = s.counters.get("events", 0) + 1
        await calls.record_state(
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
                idle_since=self._idle_from() if s.state is S.IDLE else None,
            )
        )
