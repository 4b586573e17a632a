"""Hibernation and snapshots: an idle machine's workspace is snapshotted to object storage and
only then its instance destroyed; a wake rents any matching offer and restores the workspace
byte for byte; snapshots and restores of a running machine on request."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import ActivityName
    from core.contracts.errors import ErrorType
    from core.contracts.events import EventType
    from core.contracts.hibernation import (
        PreHibernateInput,
        RestoreDone,
        RestoreInput,
        SnapshotInput,
        SnapshotTaken,
        WakeInput,
    )
    from core.contracts.machine import InstanceInfo, MachineSpec
    from core.contracts.snapshots import (
        RestoreRequest,
        RestoreResult,
        SnapshotRequest,
        SnapshotResult,
    )
    from core.contracts.states import MachineState
    from workflows.machine import activities
    from workflows.machine.idleness import Idleness, IdleWork
    from workflows.machine.kernel import MachineKernel, failure, reject
    from workflows.machine.provisioning import NotRented, Provisioning
    from workflows.machine.transitions import Action

S = MachineState


class Hibernation:
    def __init__(
        self, kernel: MachineKernel, provisioning: Provisioning, idleness: Idleness
    ) -> None:
        self.k = kernel
        self.provisioning = provisioning
        self.idleness = idleness
        kernel.hooks.on_ready.append(self._restore_if_hibernated)

    # --- the run loop's idle work ------------------------------------------------------

    async def upkeep(self) -> None:
        k, s = self.k, self.k.s
        async with k.lock:
            work = self.idleness.work()  # again: the state may have changed while this waited
            if work is IdleWork.IDLE:
                minutes = s.config.pause_after_minutes
                when = "" if not s.config.enabled else f"; hibernates in {minutes} min"
                await k.transition(S.IDLE, EventType.IDLE_DETECTED, f"no activity{when}")
            elif work is IdleWork.BUSY:
                await k.transition(S.RUNNING, EventType.ACTIVITY_RESUMED)
            elif work is IdleWork.HIBERNATE:
                why = f"auto-hibernate: idle for {s.config.pause_after_minutes} min"
                await k.cancellable(lambda: k.guarded("hibernate", lambda: self.hibernate(why)))
            elif work is IdleWork.DELETE:
                h = s.hibernation
                await k.transition(
                    S.DELETED,
                    EventType.DELETED,
                    f"hibernated for {s.config.delete_after_minutes} min; "
                    f"snapshot {h.snapshot_id} kept",
                    snapshot_id=h.snapshot_id,
                )

    # --- hibernate ---------------------------------------------------------------------

    async def hibernate(self, reason: str) -> None:
        """Hook, snapshot, and only once the snapshot is committed and verified, destroy the
        instance. Any failure before the destroy leaves the machine as it was, with why."""
        k, s = self.k, self.k.s
        h = s.hibernation
        instance = k.require_serving()  # the standby, when the machine is on it
        was = s.state
        await k.transition(S.HIBERNATING, EventType.HIBERNATING, reason)
        problem = await self.pre_hibernate_hook(instance)
        if problem is None:
            try:
                await self.take_snapshot()
            except ActivityError as err:
                _, message = failure(err)
                problem = f"snapshot failed, nothing destroyed: {message}"
                await k.record_event(EventType.SNAPSHOT_FAILED, problem)
        if problem is not None:
            h.retry_at = workflow.now() + timedelta(seconds=k.policy.auto_hibernate_retry_seconds)
            await k.transition(
                was, EventType.HIBERNATE_FAILED, f"{problem}; the machine keeps running"
            )
            return
        await self.provisioning.destroy_all()
        for hook in k.hooks.after_hibernate:  # a standby: the snapshot holds its workspace
            await hook()
        s.instance = None
        s.boot_deadline = None
        h.needs_restore = True
        h.hibernated_at = workflow.now()
        h.idle_since = h.retry_at = None
        await k.transition(
            S.HIBERNATED,
            EventType.HIBERNATED,
            reason,
            snapshot_id=h.snapshot_id,
            gpu_utilization=s.agent.gpu_utilization,
        )

    async def pre_hibernate_hook(self, instance: InstanceInfo) -> str | None:
        """Run the user's hook; why the hibernate must stop, or None to go on."""
        k = self.k
        config = k.s.config
        if config.pre_hibernate_command is None:
            return None
        try:
            result = await activities.run_pre_hibernate(
                PreHibernateInput(
                    machine_id=k.s.machine_id,
                    instance=instance,
                    command=config.pre_hibernate_command,
                    timeout_seconds=config.pre_hibernate_timeout_seconds,
                )
            )
            ok, detail = result.ok, result.output or f"exit status {result.exit_status}"
            if not ok and result.exit_status is not None and result.output:
                detail = f"exit status {result.exit_status}: {result.output}"
        except ActivityError as err:
            ok, detail = False, failure(err)[1]
        if ok:
            await k.record_event(EventType.PRE_HIBERNATE_DONE, detail or None)
            return None
        await k.record_event(EventType.PRE_HIBERNATE_FAILED, detail)
        if config.pre_hibernate_on_failure == "continue":
            return None
        return f"pre-hibernate command failed: {detail}"

    async def take_snapshot(self) -> SnapshotResult:
        """Snapshot the workspace; its id is chosen and saved first, so that a retry (or a
        worker restart) resumes the same snapshot instead of starting another."""
        k, s = self.k, self.k.s
        h = s.hibernation
        instance = k.require_serving()
        if h.pending_snapshot_id is None:
            h.pending_snapshot_id = f"{s.machine_id}-{workflow.uuid4().hex[:12]}"
        assert instance.ssh_host is not None and instance.ssh_port is not None
        try:
            result = await activities.call(
                ActivityName.SNAPSHOT_WORKSPACE,
                SnapshotRequest(
                    snapshot_id=h.pending_snapshot_id,
                    owner_id=s.owner_id,
                    machine_id=s.machine_id,
                    ssh_host=instance.ssh_host,
                    ssh_port=instance.ssh_port,
                    ssh_user=instance.ssh_user,
                ),
                SnapshotResult,
                k.policy,
                summary=f"snapshot {h.pending_snapshot_id}",
            )
        finally:
            h.pending_snapshot_id = None
        h.snapshot_id = result.snapshot_id
        return result

    # --- wake and restore --------------------------------------------------------------

    async def wake(self, input: WakeInput) -> None:
        """A new instance on any matching offer (the machine's region first, then any), the
        workspace restored from the snapshot, the agent back. No offer at all: the machine
        stays hibernated (or deleted), and the search is tried again a few times first."""
        k, s = self.k, self.k.s
        was = s.state
        await k.transition(S.WAKING, EventType.WAKING, input.reason)
        wanted = replace(
            s.spec,
            gpu_name=input.gpu_type or s.spec.gpu_name,
            region=input.region or s.spec.region,
            max_price=input.max_price if input.max_price is not None else s.spec.max_price,
        )
        problem = await self.rent_restored(wanted)
        if problem is not None:
            await k.transition(
                was,
                EventType.WAKE_FAILED,
                f"wake failed: {problem}",
                snapshot_id=s.hibernation.snapshot_id,
            )
            return
        await self.provisioning.up("wake", EventType.WOKE)

    async def rent_restored(self, wanted: MachineSpec) -> str | None:
        """Rent an instance matching `wanted` (its region first, then any) with the snapshot
        restored on it (`needs_restore`), searching again a few times when nothing matches;
        None once it answers, else why not."""
        specs = [wanted] if wanted.region is None else [wanted, replace(wanted, region=None)]
        policy = self.k.policy
        outcome: NotRented | None = None
        for attempt in range(policy.wake_offer_attempts):
            if attempt:
                await workflow.sleep(timedelta(seconds=policy.wake_offer_retry_seconds))
            for spec in specs:
                outcome = await self.provisioning.rent(spec)
                if outcome is None or not outcome.no_offer:
                    break
            if outcome is None or not outcome.no_offer:
                break
        if outcome is None:
            return None
        if not outcome.no_offer:
            return outcome.problem
        where = f"in {wanted.region}, then anywhere" if wanted.region else "anywhere"
        return (
            f"no matching offer {where}, {policy.wake_offer_attempts} searches "
            f"{policy.wake_offer_retry_seconds} s apart: {outcome.problem}"
        )

    async def _restore_if_hibernated(self) -> str | None:
        """Put the hibernated snapshot back on the new instance; None once done, else why."""
        h = self.k.s.hibernation
        if not h.needs_restore:
            return None
        assert h.snapshot_id is not None
        try:
            restored = await self.restore(h.snapshot_id)
        except ActivityError as err:
            return f"restore of snapshot {h.snapshot_id} failed: {failure(err)[1]}"
        h.needs_restore = False
        h.hibernated_at = None
        await self.k.record_event(EventType.RESTORED, restored.summary(), snapshot_id=h.snapshot_id)
        return None

    async def restore(self, snapshot_id: str) -> RestoreResult:
        k, s = self.k, self.k.s
        instance = k.require_instance()
        assert instance.ssh_host is not None and instance.ssh_port is not None
        return await activities.call(
            ActivityName.RESTORE_WORKSPACE,
            RestoreRequest(
                snapshot_id=snapshot_id,
                owner_id=s.owner_id,
                ssh_host=instance.ssh_host,
                ssh_port=instance.ssh_port,
                ssh_user=instance.ssh_user,
            ),
            RestoreResult,
            k.policy,
            summary=f"restore {snapshot_id}",
        )

    # --- the snapshot and restore updates ----------------------------------------------

    async def snapshot_requested(self, input: SnapshotInput) -> SnapshotTaken:
        k, s = self.k, self.k.s
        await k.ready()
        async with k.lock:
            k.validate(Action.SNAPSHOT)  # again: the state may have changed meanwhile
            try:
                result = await self.take_snapshot()
            except ActivityError as err:
                _, message = failure(err)
                await k.record_event(EventType.SNAPSHOT_FAILED, message)
                reject(f"snapshot failed: {message}", ErrorType.ACTION_FAILED)
            await k.record_event(
                EventType.SNAPSHOT_TAKEN, input.reason, snapshot_id=result.snapshot_id
            )
        await k.answered()
        return SnapshotTaken(
            machine_id=s.machine_id,
            snapshot_id=result.snapshot_id,
            root_hash=result.root_hash,
            logical_bytes=result.logical_bytes,
            uploaded_bytes=result.uploaded_bytes,
        )

    async def restore_requested(self, input: RestoreInput) -> RestoreDone:
        k, s = self.k, self.k.s
        await k.ready()
        async with k.lock:
            k.validate(Action.RESTORE)  # again: the state may have changed meanwhile
            snapshot_id = input.snapshot_id or s.hibernation.snapshot_id
            assert snapshot_id is not None
            try:
                restored = await self.restore(snapshot_id)
            except ActivityError as err:
                _, message = failure(err)
                await k.record_event(EventType.RESTORE_FAILED, message, snapshot_id=snapshot_id)
                reject(f"restore failed: {message}", ErrorType.ACTION_FAILED)
            reason = f"{input.reason}: {restored.summary()}" if input.reason else restored.summary()
            await k.record_event(EventType.RESTORED, reason, snapshot_id=snapshot_id)
        await k.answered()
        return RestoreDone(
            machine_id=s.machine_id, snapshot_id=snapshot_id, root_hash=restored.root_hash
        )
