"""Pause and resume. A pause takes an incremental snapshot of the workspace (the safety copy
against losing the host while stopped), then stops the instance: GPU billing stops, the disk
stays on the host. A resume starts it on that host (seconds); when the host cannot take it back
(its GPUs were rented to someone else, or the instance is gone) it wakes the pause's snapshot on
a new offer and destroys the stopped instance once the new one runs. A machine paused longer
than `hibernate_paused_after_minutes` is hibernated: only the destroy is left to do."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import ActivityName, DestroyedInstance
    from core.contracts.errors import ErrorType
    from core.contracts.events import EventType
    from core.contracts.hibernation import WakeInput
    from core.contracts.machine import InstanceInfo
    from core.contracts.states import MachineState
    from workflows.machine.hibernation import Hibernation
    from workflows.machine.kernel import MachineKernel, failure
    from workflows.machine.provisioning import Provisioning

S = MachineState


def _seconds(since: datetime) -> str:
    return f"{(workflow.now() - since).total_seconds():.1f} s"


class Pause:
    def __init__(
        self, kernel: MachineKernel, provisioning: Provisioning, hibernation: Hibernation
    ) -> None:
        self.k = kernel
        self.provisioning = provisioning
        self.hibernation = hibernation
        kernel.deadlines.watch("pause", lambda: [self.hibernate_at()])

    # --- the paused machine's limit ----------------------------------------------------

    def hibernate_at(self) -> datetime | None:
        """When the paused machine is hibernated (from the config as it is now)."""
        s = self.k.s
        if s.state is not S.PAUSED or s.pause.paused_at is None:
            return None
        return s.pause.paused_at + timedelta(minutes=s.config.hibernate_paused_after_minutes)

    def work_due(self) -> bool:
        when = self.hibernate_at()
        return not self.k.destroy_requested and when is not None and workflow.now() >= when

    async def upkeep(self) -> None:
        k = self.k
        async with k.lock:
            if self.work_due():  # again: a resume may have taken the lock first
                await k.cancellable(lambda: k.guarded("hibernate", self._hibernate_paused))

    async def _hibernate_paused(self) -> None:
        """The pause's snapshot is committed: destroy the stopped instance, and the machine is
        hibernated (a resume then wakes it)."""
        k, s = self.k, self.k.s
        h = s.hibernation
        minutes = s.config.hibernate_paused_after_minutes
        reason = (
            f"paused for {minutes} min: the stopped disk bills, snapshot {h.snapshot_id} "
            "does not; resuming wakes it on a new instance"
        )
        await k.transition(S.HIBERNATING, EventType.HIBERNATING, reason)
        await self.provisioning.destroy_all()
        s.instance = None
        s.boot_deadline = None
        s.pause.paused_at = None
        h.needs_restore = True
        h.hibernated_at = workflow.now()
        await k.transition(S.HIBERNATED, EventType.HIBERNATED, reason, snapshot_id=h.snapshot_id)

    # --- pause -------------------------------------------------------------------------

    async def pause(self, reason: str | None) -> None:
        """Hook, snapshot, and only once the snapshot is committed, stop. A failure before the
        stop leaves the machine running, with why."""
        k, s = self.k, self.k.s
        instance = k.require_instance()
        was = s.state
        started = workflow.now()
        await k.transition(S.PAUSING, EventType.PAUSING, reason)
        problem = await self.hibernation.pre_hibernate_hook(instance)
        uploaded = 0
        if problem is None:
            try:
                uploaded = (await self.hibernation.take_snapshot()).uploaded_bytes
            except ActivityError as err:
                _, message = failure(err)
                problem = f"snapshot failed, nothing stopped: {message}"
                await k.record_event(EventType.SNAPSHOT_FAILED, problem)
        if problem is not None:
            await k.transition(was, EventType.PAUSE_FAILED, f"{problem}; the machine keeps running")
            return
        await self.provisioning.instance_action(ActivityName.STOP_INSTANCE, instance)
        s.pause.paused_at = workflow.now()
        h = s.hibernation
        summary = (
            f"snapshot {h.snapshot_id} ({uploaded / 1e6:.1f} MB uploaded), instance "
            f"{instance.instance_id} stopped, in {_seconds(started)}"
        )
        await k.transition(
            S.PAUSED,
            EventType.PAUSED,
            f"{reason}: {summary}" if reason else summary,
            snapshot_id=h.snapshot_id,
        )

    # --- resume ------------------------------------------------------------------------

    async def resume(self, reason: str | None) -> None:
        """On the instance's own host, else on a new one from the pause's snapshot; a machine
        hibernated after a long pause is woken."""
        k, s = self.k, self.k.s
        if s.state in (S.HIBERNATED, S.DELETED):
            await self.hibernation.wake(WakeInput(reason=reason or "resume requested"))
            return
        instance = k.require_instance()
        started = workflow.now()
        await k.transition(S.RESUMING, EventType.RESUMING, reason)
        problem, gone = await self._start_on_host(instance)
        if problem is None:
            s.pause.paused_at = None
            await self.provisioning.up("resume", EventType.RESUMED, self._how(started, None))
            return
        await k.record_event(
            EventType.RESUMING,
            f"its host cannot take it back ({problem}); waking snapshot "
            f"{s.hibernation.snapshot_id} on a new instance",
            snapshot_id=s.hibernation.snapshot_id,
        )
        await self._resume_elsewhere(instance, problem, started, old_gone=gone)

    async def _start_on_host(self, instance: InstanceInfo) -> tuple[str | None, bool]:
        """Start the stopped instance where it is: (None, False) once it answers SSH, else
        (why not, whether the instance is gone). Quick when its host's GPUs are taken: waiting
        for them could take forever."""
        k = self.k
        try:
            await self.provisioning.instance_action(ActivityName.START_INSTANCE, instance)
            await self.provisioning.attach_keys()
            problem = await self.provisioning.wait_until_ready(
                k.policy.resume_same_host_seconds, fail_when_waiting_for_host=True
            )
            return problem, False
        except ActivityError as err:
            error_type, message = failure(err)
            if error_type not in (
                ErrorType.HOST_UNAVAILABLE,
                ErrorType.INSTANCE_GONE,
                ErrorType.INSTANCE_FAILED,
            ):
                raise
            return message, error_type == ErrorType.INSTANCE_GONE

    async def _resume_elsewhere(
        self, old: InstanceInfo, problem: str, started: datetime, *, old_gone: bool
    ) -> None:
        """Wake the snapshot on a new offer (the machine's GPU and region first, then other
        regions, within its max price); destroy the stopped instance once the new one runs. If
        no new instance comes up either, the machine stays paused on its old host, or, when
        that instance is gone, hibernated (its snapshot is committed)."""
        k, s = self.k, self.k.s
        h = s.hibernation
        s.pause.left_behind = old
        s.instance = None
        h.needs_restore = True
        elsewhere = await self.hibernation.rent_restored(s.spec)
        if elsewhere is not None:
            s.pause.left_behind = None
            why = f"resume failed: on its host: {problem}; on a new host: {elsewhere}"
            if old_gone:
                s.pause.paused_at = None
                h.hibernated_at = workflow.now()
                await k.record_destroyed(
                    [DestroyedInstance(instance_id=old.instance_id, label=old.label)]
                )
                await k.transition(
                    S.HIBERNATED, EventType.RESUME_FAILED, why, snapshot_id=h.snapshot_id
                )
                return
            h.needs_restore = False
            s.instance = old
            # A start may still be waiting for the old host's GPUs: it must not land later and
            # bill while the machine shows paused.
            await self.provisioning.instance_action(ActivityName.STOP_INSTANCE, old)
            await k.transition(S.PAUSED, EventType.RESUME_FAILED, why, snapshot_id=h.snapshot_id)
            return
        s.pause.paused_at = None
        up = self.provisioning.up("resume", EventType.RESUMED, self._how(started, old))
        if old_gone:
            await up
        else:
            # The stopped instance goes while the new one gets its agent and service: the new
            # one runs (its workspace restored) already.
            await asyncio.gather(up, self.provisioning.destroy_attempt(old.label))
        s.pause.left_behind = None

    def _how(self, started: datetime, left: InstanceInfo | None) -> str:
        s = self.k.s
        if left is None:
            return f"resumed on its host in {_seconds(started)}"
        new = s.instance
        assert new is not None
        where = new.geolocation or "unknown location"
        return (
            f"resumed on a new host in {_seconds(started)} ({new.gpu_name}, {where}, "
            f"instance {new.instance_id}) from snapshot {s.hibernation.snapshot_id}; the "
            f"stopped instance {left.instance_id} destroyed"
        )
