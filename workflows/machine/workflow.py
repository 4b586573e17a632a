"""MachineWorkflow: one long-lived workflow per machine, from create to destroy. This class is its
whole message surface (the run loop, the query, every signal and update with its validator),
each a few lines handing the work to the kernel or a capability.

Shape (after samples-python `message_passing/safe_message_handlers`): the whole state is one
`MachineSnapshot`, carried across continue-as-new; update handlers check their transition in a
validator before anything is recorded, then do their work under one lock (re-checked there: the
state may have changed while they waited); a destroy cancels a boot in progress and then
destroys every instance carrying the machine's label prefix.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    # Payloads are decoded in the sandbox, which resolves a dataclass's field types in its own
    # module: every contract module a payload reaches must be imported here, not only by a
    # passed-through module (the outbox's records travel in the carried state).
    import core.contracts.pause  # noqa: F401
    import core.contracts.records  # noqa: F401
    import core.contracts.serverless  # noqa: F401
    import core.contracts.service  # noqa: F401
    from core.contracts.activities import ActivityName, LifecyclePolicyInput
    from core.contracts.agent import AgentReport
    from core.contracts.errors import ErrorType
    from core.contracts.hibernation import (
        ConfigureInput,
        ConfigureResult,
        HibernateInput,
        HibernateResult,
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
        LifecyclePolicy,
        SshKeysChanged,
    )
    from core.contracts.serverless import (
        ColdStartGaveUp,
        ServerlessInput,
        ServerlessResult,
        TrafficReport,
        WakeForRequestInput,
        WakeForRequestResult,
    )
    from core.contracts.standby import (
        MigrateInput,
        MigrateResult,
        ProviderEvent,
        StandbyConfigInput,
        StandbyView,
        SyncReport,
    )
    from core.contracts.states import MachineState
    from core.contracts.workflow import MachineInput, MachineResult, MachineSnapshot
    from core.search_attributes import GPU_NAME, MACHINE_OWNER, MACHINE_STATE
    from workflows.machine import activities
    from workflows.machine.agent import AgentCare
    from workflows.machine.failover import Failover
    from workflows.machine.hibernation import Hibernation
    from workflows.machine.idleness import Idleness, IdleWork
    from workflows.machine.kernel import MachineKernel, failure, reject
    from workflows.machine.pause import Pause
    from workflows.machine.provisioning import Provisioning
    from workflows.machine.serverless import Serverless
    from workflows.machine.service import Service
    from workflows.machine.standby import Standby
    from workflows.machine.standby_messages import StandbyMessages
    from workflows.machine.transitions import TARGET, Action, is_joining, rejection

S = MachineState
Work = Callable[[str | None], Awaitable[None]]


@workflow.defn
class MachineWorkflow:
    @workflow.init
    def __init__(self, input: MachineInput) -> None:
        snapshot = input.carried or MachineSnapshot(
            machine_id=input.machine_id, owner_id=input.owner_id, spec=input.spec
        )
        self.k = MachineKernel(snapshot)
        self.provisioning = Provisioning(self.k)
        self.agent = AgentCare(self.k)
        self.idleness = Idleness(self.k)
        self.hibernation = Hibernation(self.k, self.provisioning, self.idleness)
        self.pause_resume = Pause(self.k, self.provisioning, self.hibernation)
        self.service = Service(self.k)
        self.serverless = Serverless(self.k, self.idleness, self.pause_resume)
        self.standby = Standby(self.k)
        self.standby_messages = StandbyMessages(self.k, self.standby)
        self.failover = Failover(self.k, self.provisioning, self.standby, self.idleness)

    # --- run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: MachineInput) -> MachineResult:
        k, s = self.k, self.k.s
        k.begin()
        self.standby.begin(input.standby)
        workflow.upsert_search_attributes(
            [
                MACHINE_STATE.value_set(s.state.value),
                MACHINE_OWNER.value_set(s.owner_id),
                GPU_NAME.value_set(s.spec.gpu_name or "cpu"),
            ]
        )
        flusher = asyncio.create_task(k.outbox.flush_forever()) if k.uses_outbox else None
        # Held from the first activation on, so that a message arriving with the start waits
        # for the policy and the first boot instead of racing them.
        async with k.lock:
            if s.policy is None:
                s.policy = await activities.call(
                    ActivityName.LIFECYCLE_POLICY,
                    LifecyclePolicyInput(machine_id=s.machine_id),
                    LifecyclePolicy,
                    None,
                    local=k.lean_boot,
                )
            if input.carried is None and not k.destroy_requested:
                if self.standby.work_due():  # made alongside the GPU, never in its way
                    self.standby.kick()
                await k.cancellable(lambda: k.guarded("create", self.provisioning.create))
        while True:
            mark = k.deadlines.mark
            try:
                await workflow.wait_condition(
                    functools.partial(self._loop_has_work, mark),
                    timeout=k.deadlines.next_wait(workflow.now()),
                )
            except TimeoutError:
                pass  # a deadline passed: checked just below
            # A lost GPU before its agent's re-install: a dead machine is not worth one.
            if self.failover.work_due():
                await self.failover.upkeep()
                continue
            if self.agent.work_due():
                await self.agent.upkeep()
                continue
            if self.standby.work_due():
                self.standby.kick()
                continue
            idle_work = self.idleness.work()
            if idle_work is IdleWork.MIGRATE:
                await self.failover.idle_upkeep()
                continue
            if idle_work is IdleWork.PAUSE:
                await self.serverless.upkeep()
                continue
            if idle_work is not None:
                await self.hibernation.upkeep()
                continue
            if self.pause_resume.work_due():
                await self.pause_resume.upkeep()
                continue
            if not (s.state is S.DESTROYED or self._should_continue_as_new()):
                continue
            # Never abandon an update half done (nor the standby's work); a destroy may arrive
            # while we wait, so the terminal state is checked again afterwards.
            await workflow.wait_condition(
                lambda: workflow.all_handlers_finished() and self.standby.idle()
            )
            if s.state is S.DESTROYED:
                if flusher is not None:
                    await k.outbox.drained()  # the destroyed event is written before the end
                    flusher.cancel()
                return MachineResult(machine_id=s.machine_id, state=s.state)
            if self._should_continue_as_new():
                # Records not yet written go with the state; the new run writes them.
                workflow.logger.info("continuing as new with %d events", s.counters["events"])
                workflow.continue_as_new(
                    MachineInput(
                        machine_id=s.machine_id, owner_id=s.owner_id, spec=s.spec, carried=s
                    )
                )

    def _loop_has_work(self, mark: int) -> bool:
        return (
            self.k.s.state is S.DESTROYED
            or self._should_continue_as_new()
            or self.agent.work_due()
            or self.failover.work_due()
            or self.standby.work_due()
            or self.idleness.work() is not None
            or self.pause_resume.work_due()
            or self.k.deadlines.moved_since(mark)
        )

    def _should_continue_as_new(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

    # --- query and signals -------------------------------------------------------------

    @workflow.query
    def state(self) -> MachineSnapshot:
        return self.k.s

    @workflow.signal
    async def ssh_keys_changed(self, input: SshKeysChanged) -> None:
        k = self.k
        await k.ready()
        async with k.lock:
            if k.destroy_requested:
                return
            try:
                if k.s.state.is_up():  # a start or a new instance attaches the current keys
                    await self.provisioning.attach_keys()
                if self.standby.ready():
                    await self.standby_messages.attach_owner_keys()
            except ActivityError as err:
                workflow.logger.warning("attaching changed SSH keys failed: %s", failure(err)[1])

    @workflow.signal
    def agent_report(self, report: AgentReport) -> None:
        """An agent transition (from the API) or silence (from the fleet monitor). Idempotent:
        a report no newer than the last one applied changes nothing."""
        if self.agent.apply(report):
            self.idleness.on_report(report)
            self.failover.on_agent_report(report)

    @workflow.signal
    async def standby_sync(self, report: SyncReport) -> None:
        """A transition of the standby sync's health (from the API's heartbeat ingest)."""
        await self.standby_messages.sync_reported(report)

    @workflow.signal
    def provider_event(self, event: ProviderEvent) -> None:
        """The provider says an instance is gone, failed or interrupted (the reconciler)."""
        if not self.standby_messages.on_provider_event(event):  # not about the standby
            self.failover.on_provider_event(event)

    # --- standby and migration ---------------------------------------------------------

    @workflow.update
    async def configure_standby(self, input: StandbyConfigInput) -> StandbyView:
        return await self.standby_messages.configure(input)

    @configure_standby.validator
    def _validate_configure_standby(self, input: StandbyConfigInput) -> None:
        if self.k.s.state.is_ending() or self.k.destroy_requested:
            reject(f"machine is {self.k.s.state}")
        self.standby_messages.validate_config(input)

    @workflow.update
    async def migrate(self, input: MigrateInput) -> MigrateResult:
        return await self.failover.migrate(input)

    @migrate.validator
    def _validate_migrate(self, input: MigrateInput) -> None:
        self.k.validate(Action.MIGRATE)
        self.failover.validate_migrate(input)

    # --- lifecycle updates -------------------------------------------------------------

    @workflow.update
    async def stop(self, input: ActionInput) -> ActionResult:
        return await self._act(Action.STOP, input, self.provisioning.stop)

    @stop.validator
    def _validate_stop(self, input: ActionInput) -> None:
        self._validate_action(Action.STOP)

    @workflow.update
    async def start(self, input: ActionInput) -> ActionResult:
        return await self._act(Action.START, input, self.provisioning.start)

    @start.validator
    def _validate_start(self, input: ActionInput) -> None:
        self._validate_action(Action.START)

    @workflow.update
    async def restart(self, input: ActionInput) -> ActionResult:
        return await self._act(Action.RESTART, input, self.provisioning.restart)

    @restart.validator
    def _validate_restart(self, input: ActionInput) -> None:
        self._validate_action(Action.RESTART)

    @workflow.update
    async def destroy(self, input: ActionInput) -> ActionResult:
        self.k.request_destroy()
        return await self._act(Action.DESTROY, input, self.provisioning.destroy)

    @destroy.validator
    def _validate_destroy(self, input: ActionInput) -> None:
        self.k.validate(Action.DESTROY)

    @workflow.update
    async def pause(self, input: ActionInput) -> ActionResult:
        return await self._act(Action.PAUSE, input, self.pause_resume.pause)

    @pause.validator
    def _validate_pause(self, input: ActionInput) -> None:
        self._validate_action(Action.PAUSE)

    @workflow.update
    async def resume(self, input: ActionInput) -> ActionResult:
        return await self._act(Action.RESUME, input, self.pause_resume.resume)

    @resume.validator
    def _validate_resume(self, input: ActionInput) -> None:
        self._validate_action(Action.RESUME)

    def _validate_action(self, action: Action) -> None:
        self.k.validate(action)
        self.provisioning.validate_supported(action)

    # --- serverless --------------------------------------------------------------------

    @workflow.update
    async def serverless_mode(self, input: ServerlessInput) -> ServerlessResult:
        return await self.serverless.configure(input)

    @serverless_mode.validator
    def _validate_serverless_mode(self, input: ServerlessInput) -> None:
        if self.k.s.state.is_ending() or self.k.destroy_requested:
            reject(f"machine is {self.k.s.state}")
        if input.idle_timeout_seconds < 1:
            reject("idle_timeout_seconds must be at least 1", ErrorType.INVALID_INPUT)

    @workflow.signal
    def serverless_traffic(self, report: TrafficReport) -> None:
        self.serverless.on_traffic(report)

    @workflow.update
    async def wake_for_request(self, input: WakeForRequestInput) -> WakeForRequestResult:
        return await self.serverless.wake_for_request(input)

    @wake_for_request.validator
    def _validate_wake_for_request(self, input: WakeForRequestInput) -> None:
        if not self.serverless.waits_in(self.k.s.state) or self.k.destroy_requested:
            reject(self.k.s.reason or f"machine is {self.k.s.state}")

    @workflow.signal
    async def serverless_gave_up(self, input: ColdStartGaveUp) -> None:
        await self.serverless.gave_up(input)

    # --- hibernation updates -----------------------------------------------------------

    @workflow.update
    async def configure(self, input: ConfigureInput) -> ConfigureResult:
        s = self.k.s
        # Applied in the activation the validator accepted it in: no later message sees the
        # old config.
        s.config = apply_config(s.config, input)
        self.idleness.recompute()
        await self.k.record_config()
        await self.k.answered()
        return ConfigureResult(machine_id=s.machine_id, config=s.config)

    @configure.validator
    def _validate_configure(self, input: ConfigureInput) -> None:
        if self.k.s.state.is_ending() or self.k.destroy_requested:
            reject(f"machine is {self.k.s.state}")
        problem = config_problem(input)
        if problem is not None:
            reject(problem, ErrorType.INVALID_INPUT)

    @workflow.update
    async def hibernate(self, input: HibernateInput) -> HibernateResult:
        s = self.k.s
        reason = input.reason or "hibernate requested"
        await self._act(
            Action.HIBERNATE,
            ActionInput(reason=reason),
            lambda why: self.hibernation.hibernate(why or reason),
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
        self.k.validate(Action.HIBERNATE)

    @workflow.update
    async def wake(self, input: WakeInput) -> WakeResult:
        s = self.k.s
        requested = workflow.now()
        await self._act(
            Action.WAKE, ActionInput(reason=input.reason), lambda _why: self.hibernation.wake(input)
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
        if self.k.s.state is S.STANDBY and not self.k.destroy_requested:
            reject("machine runs on its standby; migrate it to a GPU", ErrorType.ON_STANDBY)
        self.k.validate(Action.WAKE)
        if input.max_price is not None and input.max_price <= 0:
            reject("max_price must be above 0", ErrorType.INVALID_INPUT)

    @workflow.update
    async def snapshot(self, input: SnapshotInput) -> SnapshotTaken:
        return await self.hibernation.snapshot_requested(input)

    @snapshot.validator
    def _validate_snapshot(self, input: SnapshotInput) -> None:
        self.k.validate(Action.SNAPSHOT)

    @workflow.update
    async def restore(self, input: RestoreInput) -> RestoreDone:
        return await self.hibernation.restore_requested(input)

    @restore.validator
    def _validate_restore(self, input: RestoreInput) -> None:
        self.k.validate(Action.RESTORE)
        if input.snapshot_id is None and self.k.s.hibernation.snapshot_id is None:
            reject("machine has no snapshot yet; take one first")

    # --- one action under the lock -----------------------------------------------------

    async def _act(self, action: Action, input: ActionInput, work: Work) -> ActionResult:
        k, s = self.k, self.k.s
        # The handler starts in the activation its validator ran in, so this is the state the
        # request was accepted in.
        joined = is_joining(action, s.state)
        await k.ready()
        async with k.lock:
            if not joined and not (s.state is TARGET[action] and action is not Action.RESTART):
                if k.destroy_requested and action is not Action.DESTROY:
                    reject("machine is being destroyed", ErrorType.SUPERSEDED)
                problem = rejection(action, s.state)
                if problem is not None:  # the state changed while this request waited its turn
                    reject(problem)
                if action is Action.DESTROY:
                    await k.guarded(action, lambda: work(input.reason))
                else:
                    await k.cancellable(lambda: k.guarded(action, lambda: work(input.reason)))
        await k.answered()
        if action is not Action.DESTROY and k.destroy_requested:
            reject("machine is being destroyed", ErrorType.SUPERSEDED)
        if s.state is not TARGET[action]:
            reject(
                f"could not {action} the machine: {s.reason or 'unknown reason'}",
                ErrorType.ACTION_FAILED,
            )
        return ActionResult(
            machine_id=s.machine_id,
            state=s.state,
            instance_id=s.instance.instance_id if s.instance else None,
        )
