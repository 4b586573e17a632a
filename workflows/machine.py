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
    from core.search_attributes import GPU_NAME, MACHINE_OWNER, MACHINE_STATE
    from core.types import (
        ActionInput,
        ActionResult,
        ActivityName,
        AgentReport,
        AttachKeysInput,
        DestroyInstancesInput,
        ErrorType,
        InstallAgentInput,
        InstanceInfo,
        LifecyclePolicy,
        LifecyclePolicyInput,
        MachineInput,
        MachineResult,
        MachineSnapshot,
        MachineState,
        OwnerKeysInput,
        ProvisionInput,
        RecordInstanceInput,
        RecordInstancesDestroyedInput,
        RecordStateInput,
        SshKeysChanged,
        instance_label,
    )
    from workflows import activity_calls as calls
    from workflows.transitions import TARGET, Action, is_joining, rejection

S = MachineState

# States in which the agent should be running and reporting.
UP = frozenset({S.RUNNING, S.IDLE})
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

    # --- run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: MachineInput) -> MachineResult:
        s = self._snapshot
        workflow.upsert_search_attributes(
            [
                MACHINE_STATE.value_set(s.state.value),
                MACHINE_OWNER.value_set(s.owner_id),
                GPU_NAME.value_set(s.spec.gpu_name),
            ]
        )
        try:
            # Held from the first activation on, so that a message arriving with the start
            # waits for the policy and the first boot instead of racing them.
            async with self._lock:
                if s.policy is None:
                    s.policy = await calls.lifecycle_policy(LifecyclePolicyInput(s.machine_id))
                if input.carried is None and not self._destroy_requested:
                    await self._cancellable(lambda: self._guarded("create", self._create))
        except asyncio.CancelledError:
            if not self._destroy_requested:
                raise  # the workflow itself was cancelled

        while True:
            try:
                await workflow.wait_condition(
                    lambda: (
                        s.state is S.DESTROYED
                        or self._should_continue_as_new()
                        or self._agent_work_due()
                    ),
                    timeout=self._until_agent_deadline(),
                )
            except TimeoutError:
                pass  # an agent deadline passed: checked just below
            if self._agent_work_due():
                await self._agent_upkeep()
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
            if self._snapshot.state is not S.RUNNING or self._destroy_requested:
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

    # --- actions --------------------------------------------------------------------------

    def _validate(self, action: Action) -> None:
        problem = rejection(action, self._snapshot.state)
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
            await self._up(what)
        else:
            await self._transition(S.ERROR, "error", f"{what} failed: {problem}")

    async def _destroy(self, reason: str | None) -> None:
        s = self._snapshot
        await self._transition(S.DESTROYING, "destroy_requested", reason)
        destroyed = await calls.destroy_instances(
            DestroyInstancesInput(provider=s.spec.provider, machine_id=s.machine_id),
            self._policy,
        )
        await calls.record_instances_destroyed(
            RecordInstancesDestroyedInput(
                machine_id=s.machine_id, provider=s.spec.provider, instances=destroyed.destroyed
            )
        )
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
        """Rent the cheapest matching offer and wait until it answers SSH; an instance that
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
                        spec=s.spec,
                        label=label,
                        excluded_offers=list(s.failed_offers),
                    ),
                    policy,
                )
            except ActivityError as err:
                error_type, message = _failure(err)
                if error_type != ErrorType.NO_MATCHING_OFFER:
                    await self._destroy_attempt(label)  # a create may have landed
                await self._transition(S.ERROR, "error", message)
                return
            s.instance = instance
            await calls.record_instance(RecordInstanceInput(s.machine_id, instance))
            try:
                await self._attach_keys()
                problem = await self._wait_until_ready()
            except ActivityError as err:
                _, problem = _failure(err)
            if problem is None:
                await self._up("create")
                return
            where = instance.geolocation or "unknown location"
            failures.append(f"attempt {s.attempt} ({instance.gpu_name}, {where}): {problem}")
            if instance.offer_id:
                s.failed_offers.append(instance.offer_id)
            await self._record_event("boot_failed", failures[-1])
            await self._destroy_attempt(label)
            s.instance = None
            s.boot_deadline = None
        await self._transition(
            S.ERROR,
            "error",
            f"no instance came up after {len(failures)} attempts: " + "; ".join(failures),
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

    # --- the agent ------------------------------------------------------------------------

    async def _up(self, what: str) -> None:
        """The instance answers SSH: install the agent, then the machine is running, with the
        reason when the agent could not be installed (the workload must not depend on it)."""
        problem = await self._install_agent(f"installed after {what}")
        reason = None if problem is None else f"agent not installed: {problem}"
        await self._transition(S.RUNNING, "running", reason)

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

    def _until_agent_deadline(self) -> timedelta | None:
        if not self._agent_expected():
            return None
        deadlines = [t for t in self._agent_deadlines() if t is not None]
        if not deadlines:
            return None
        return max(min(deadlines) - workflow.now(), timedelta(seconds=1))

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
        keys = await calls.owner_ssh_keys(OwnerKeysInput(s.owner_id))
        await calls.attach_ssh_keys(AttachKeysInput(s.instance, keys.public_keys))

    # --- state ----------------------------------------------------------------------------

    @property
    def _policy(self) -> LifecyclePolicy:
        assert self._snapshot.policy is not None
        return self._snapshot.policy

    async def _transition(
        self, state: MachineState, event_type: str, reason: str | None = None
    ) -> None:
        s = self._snapshot
        s.state = state
        s.state_since = workflow.now()
        if state not in UP:  # no agent is expected to report
            s.agent.report_due_by = s.agent.reinstall_at = None
        s.reason = reason
        workflow.upsert_search_attributes([MACHINE_STATE.value_set(state.value)])
        await self._record_event(event_type, reason)

    async def _record_event(self, event_type: str, reason: str | None) -> None:
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
            )
        )
