"""GPU -> CPU failover: the machine's moves between its GPU and its standby.

- A lost GPU (the provider says gone, failed or interrupted; or the agent went silent and the
  provider confirms): `failing_over`, the lost instance destroyed (an interrupted one still
  bills its disk), `standby` (the `ssh` command points at the standby, which holds every byte
  up to the last completed sync), then a hunt for a new GPU with backoff.
- Back to a GPU (the hunt, or `migrate to gpu`): `failing_over`, a new GPU rented with the
  standby's workspace restored onto it and verified before it counts as up, the sync pointed
  at it again, `running`.
- To the standby (`migrate to cpu`, or idle past `idle_migrate_minutes`): a final sync, then
  the GPU destroyed; back only when asked.

A failover, a migration or an error never destroys the standby; only a user destroy does.
Without a standby, a lost instance leaves the machine `hibernated` from its last committed
snapshot, or in `error` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import ActivityName
    from core.contracts.agent import AgentReport
    from core.contracts.errors import ErrorType
    from core.contracts.events import EventType
    from core.contracts.standby import (
        InstanceCheckInput,
        InstanceCheckResult,
        MigrateInput,
        MigrateResult,
        ProviderEvent,
        RestoreFromStandbyInput,
        RestoreFromStandbyResult,
        Side,
        StandbyReason,
        SyncNowInput,
        SyncOutcome,
    )
    from core.contracts.states import InstanceStatus, MachineState
    from workflows.machine import activities
    from workflows.machine.idleness import Idleness, IdleWork
    from workflows.machine.kernel import MachineKernel, failure, reject
    from workflows.machine.provisioning import Provisioning
    from workflows.machine.standby import Standby, backoff

S = MachineState
# What the provider says of an instance that is lost to the user.
_LOST = frozenset({InstanceStatus.GONE, InstanceStatus.FAILED})
# What the provider may say of an instance that is fine (or may be).
_ALIVE = frozenset({InstanceStatus.RUNNING, InstanceStatus.PROVISIONING, InstanceStatus.UNKNOWN})
# States in which a lost GPU is acted on (a boot's own failures are provisioning's).
_WATCHED = frozenset({S.RUNNING, S.IDLE})


@dataclass
class Loss:
    """A suspected loss, confirmed with the provider before anything moves."""

    why: str


def _clock(at: datetime | None) -> str:
    return at.strftime("%H:%M:%S UTC") if at else "never"


class Failover:
    def __init__(
        self,
        kernel: MachineKernel,
        provisioning: Provisioning,
        standby: Standby,
        idleness: Idleness,
    ) -> None:
        self.k = kernel
        self.idleness = idleness
        self.provisioning = provisioning
        self.standby = standby
        self._loss: Loss | None = None
        self._restoring = False
        self._restored: RestoreFromStandbyResult | None = None
        kernel.hooks.on_ready.append(self._restore_if_failing_back)
        kernel.deadlines.watch("failover", self._deadlines)

    # --- messages ----------------------------------------------------------------------

    def on_provider_event(self, event: ProviderEvent) -> None:
        s = self.k.s
        if s.instance is None or event.instance_id != s.instance.instance_id:
            return  # an instance the machine no longer has
        stopped_under_us = event.status is InstanceStatus.STOPPED and s.state in _WATCHED
        if event.status in _LOST or event.interrupted or stopped_under_us:
            # Checked with the provider before anything moves: the reconciler's listing may
            # be older than the machine's newest instance.
            what = event.detail or ("interrupted" if event.interrupted else event.status.value)
            self._loss = Loss(f"instance {event.instance_id} {what}")
            self.k.deadlines.check()

    def on_agent_report(self, report: AgentReport) -> None:
        """A silent agent on a machine with a standby: the provider is asked (not trusted by
        itself: a network blip must not move a machine)."""
        if not report.online and self.standby.on and self.k.s.state in _WATCHED:
            if self._loss is None:
                self._loss = Loss("the agent went silent")
                self.k.deadlines.check()

    # --- the run loop ------------------------------------------------------------------

    def _deadlines(self) -> list[datetime | None]:
        st = self.k.s.standby
        return [st.hunt_at] if self.k.s.state is S.STANDBY else []

    def work_due(self) -> bool:
        k, s = self.k, self.k.s
        if k.destroy_requested or s.policy is None:
            return False
        if self._loss is not None:
            return True
        st = s.standby
        hunting = s.state is S.STANDBY and st.reason is StandbyReason.GPU_LOST
        return hunting and st.hunt_at is not None and workflow.now() >= st.hunt_at

    async def upkeep(self) -> None:
        k, s = self.k, self.k.s
        async with k.lock:
            if not self.work_due():
                return
            loss, self._loss = self._loss, None
            if loss is not None:
                if s.state not in _WATCHED or s.instance is None:
                    return  # moved meanwhile (stopped, destroyed, already failing over)
                if not await self._confirmed(loss):
                    return
                await k.cancellable(lambda: k.guarded("failover", lambda: self.lost(loss.why)))
                return
            await k.cancellable(
                lambda: k.guarded("failover", lambda: self.back_to_gpu("the GPU was lost"))
            )

    async def _confirmed(self, loss: Loss) -> bool:
        s = self.k.s
        assert s.instance is not None
        try:
            seen = await activities.call(
                ActivityName.CHECK_INSTANCE,
                InstanceCheckInput(instance=s.instance),
                InstanceCheckResult,
                self.k.policy,
            )
        except ActivityError as err:
            workflow.logger.warning("checking a silent machine failed: %s", failure(err)[1])
            return False
        if seen.status in _ALIVE and not seen.interrupted:
            return False
        loss.why = f"{loss.why}; the provider says {seen.detail or seen.status.value}"
        return True

    # --- a lost GPU --------------------------------------------------------------------

    async def lost(self, why: str) -> None:
        k, s = self.k, self.k.s
        if not self.standby.ready():
            await self._lost_without_standby(why)
            return
        st = s.standby
        await k.transition(S.FAILING_OVER, EventType.GPU_LOST, f"GPU lost: {why}")
        await self.provisioning.destroy_all()
        s.instance = None
        s.boot_deadline = None
        st.linked_instance_id = None
        st.side = Side.CPU
        st.reason = StandbyReason.GPU_LOST
        st.moved_at = st.hunt_at = workflow.now()
        st.hunts = 0
        self.standby.record()
        await k.transition(
            S.STANDBY,
            EventType.ON_STANDBY,
            f"GPU lost ({why}); on the standby with the workspace as of the last sync "
            f"({_clock(st.last_sync_at)}); looking for a new GPU",
        )

    async def _lost_without_standby(self, why: str) -> None:
        k, s = self.k, self.k.s
        h = s.hibernation
        await self.provisioning.destroy_all()
        s.instance = None
        s.boot_deadline = None
        if h.snapshot_id is not None:
            h.needs_restore = True
            h.hibernated_at = workflow.now()
            h.idle_since = h.retry_at = None
            await k.transition(
                S.HIBERNATED,
                EventType.INSTANCE_LOST,
                f"instance lost ({why}); hibernated from its last snapshot {h.snapshot_id}: "
                "wake it to continue",
                snapshot_id=h.snapshot_id,
            )
        else:
            await k.transition(
                S.ERROR,
                EventType.INSTANCE_LOST,
                f"instance lost ({why}) and no snapshot or standby holds its workspace; "
                "start the machine again to provision a new instance",
            )

    # --- back to a GPU -----------------------------------------------------------------

    async def back_to_gpu(self, why: str) -> None:
        """Rent a new GPU with the standby's workspace restored: `running`, or `standby` again
        with a next try (after a loss) or the reason (a migration). The machine shows
        `standby` (the user works there) while a GPU is found and boots, and `failing_over`
        only from the restore on, when the workspace moves."""
        k, s = self.k, self.k.s
        st = s.standby
        await k.record_event(EventType.MIGRATING, f"renting a new GPU: {why}")
        self._restoring, self._restored = True, None
        try:
            outcome = await self.provisioning.rent(s.spec)
        finally:
            self._restoring = False
        if outcome is not None:
            st.hunts += 1
            next_try = ""
            if st.reason is StandbyReason.GPU_LOST:
                wait = backoff(st.hunts, k.policy.wake_offer_retry_seconds)
                st.hunt_at = workflow.now() + wait
                next_try = f"; tried again in {int(wait.total_seconds())} s"
            self.standby.record()
            problem = f"no GPU yet: {outcome.problem}{next_try}"
            if s.state is S.STANDBY:
                s.reason = problem
                await k.record_event(EventType.GPU_SEARCH_FAILED, problem)
                k.deadlines.check()
            else:  # a restore had begun on an instance that then failed
                await k.transition(S.STANDBY, EventType.GPU_SEARCH_FAILED, problem)
            return
        st.side = Side.GPU
        st.reason = None
        st.hunt_at = None
        await self.standby.link()
        restored = self._restored
        how = (
            f"workspace restored from the standby and verified ({restored.files} files, "
            f"{restored.bytes_total} bytes)"
            if restored
            else "workspace restored from the standby"
        )
        await self.provisioning.up("failover", EventType.BACK_ON_GPU, how)

    async def _restore_if_failing_back(self) -> str | None:
        """On a freshly rented GPU while failing back: the standby's workspace, verified."""
        k, s = self.k, self.k.s
        if not self._restoring:
            return None
        st = s.standby
        assert s.instance is not None and st.instance is not None
        if s.state is S.STANDBY:
            where = s.instance.geolocation or s.instance.instance_id
            await k.transition(
                S.FAILING_OVER,
                EventType.MIGRATING,
                f"restoring the standby's workspace onto {s.instance.gpu_name} in {where}",
            )
        try:
            self._restored = await activities.call(
                ActivityName.RESTORE_FROM_STANDBY,
                RestoreFromStandbyInput(
                    machine_id=s.machine_id,
                    standby=st.instance,
                    gpu=s.instance,
                    excludes=list(st.config.excludes),
                ),
                RestoreFromStandbyResult,
                k.policy,
                summary=f"restore from standby {st.instance.instance_id}",
            )
        except ActivityError as err:
            return f"restore from the standby failed: {failure(err)[1]}"
        return None

    # --- to the standby ----------------------------------------------------------------

    async def to_cpu(self, why: str, reason: StandbyReason) -> None:
        """A final sync, then the GPU released; a failed sync keeps the GPU running."""
        k, s = self.k, self.k.s
        st = s.standby
        assert s.instance is not None
        was = s.state
        await k.transition(S.FAILING_OVER, EventType.MIGRATING, f"moving to the standby: {why}")
        try:
            synced = await activities.call(
                ActivityName.SYNC_NOW,
                SyncNowInput(machine_id=s.machine_id, gpu=s.instance),
                SyncOutcome,
                k.policy,
                summary="final sync to the standby",
            )
        except ActivityError as err:
            await k.transition(
                was,
                EventType.MIGRATE_FAILED,
                f"final sync failed, the GPU keeps running: {failure(err)[1]}",
            )
            return
        st.last_sync_at = synced.completed_at
        await self.provisioning.destroy_all()
        s.instance = None
        s.boot_deadline = None
        st.linked_instance_id = None
        st.side = Side.CPU
        st.reason = reason
        st.moved_at = workflow.now()
        st.hunt_at = None
        self.standby.record()
        await k.transition(
            S.STANDBY,
            EventType.ON_STANDBY,
            f"{why}; on the standby after a final sync ({synced.bytes_sent} bytes in "
            f"{synced.seconds:.1f} s); the GPU is released",
        )

    # --- the migrate update ------------------------------------------------------------

    def validate_migrate(self, input: MigrateInput) -> None:
        s = self.k.s
        if not self.standby.on or not self.standby.ready():
            problem = s.standby.problem
            reject(
                "machine has no standby" + (f" ({problem})" if problem else "")
                if self.standby.on
                else "machine has no standby; enable standby first",
                ErrorType.INVALID_TRANSITION,
            )
        if input.to is Side.CPU:
            if s.state is S.STANDBY:
                reject("machine is already on its standby")
            if not s.state.is_up():
                reject(f"machine is {s.state}; it can move to its standby only when running")
            if not self.standby.linked():
                reject("the sync to the standby is not set up yet; try again shortly")
        elif s.state is not S.STANDBY:
            reject("machine is already on a GPU" if s.state.is_up() else f"machine is {s.state}")

    async def migrate(self, input: MigrateInput) -> MigrateResult:
        k, s = self.k, self.k.s
        await k.ready()
        async with k.lock:
            if k.destroy_requested:
                reject("machine is being destroyed", ErrorType.SUPERSEDED)
            self.validate_migrate(input)  # again: the state may have moved while this waited
            why = input.reason or f"migrate to {input.to.value} requested"
            if input.to is Side.CPU:
                await k.cancellable(
                    lambda: k.guarded("migrate", lambda: self.to_cpu(why, StandbyReason.REQUESTED))
                )
            else:
                await k.cancellable(lambda: k.guarded("migrate", lambda: self.back_to_gpu(why)))
        await k.answered()
        side = s.standby.side
        if (input.to is Side.CPU) != (s.state is S.STANDBY) or side is not input.to:
            reject(
                f"could not migrate to {input.to.value}: {s.reason or 'unknown reason'}",
                ErrorType.ACTION_FAILED,
            )
        return MigrateResult(
            machine_id=s.machine_id, state=s.state, side=side, instance=k.serving_instance()
        )

    async def idle_upkeep(self) -> None:
        """Idle past the window with a linked standby: to the CPU instead of hibernating."""
        async with self.k.lock:
            if self.idleness.work() is not IdleWork.MIGRATE:
                return  # the state moved while this waited its turn
            await self._idle_migrate()

    async def _idle_migrate(self) -> None:
        k, s = self.k, self.k.s
        minutes = s.standby.config.idle_migrate_minutes
        await k.cancellable(
            lambda: k.guarded(
                "migrate",
                lambda: self.to_cpu(f"idle for {minutes} min", StandbyReason.IDLE),
            )
        )
        if s.state.is_up():  # the final sync failed: try again later
            s.hibernation.retry_at = workflow.now() + timedelta(
                seconds=k.policy.auto_hibernate_retry_seconds
            )
            self.idleness.recompute()
