"""The CPU standby: made (in parallel with the GPU, never in its way) when standby is enabled,
linked to the GPU machine's agent, which syncs the workspace to it every interval, re-made when
it is preempted or lost, and removed only by a user destroy or by disabling standby.

Its work runs in a task of its own under its own lock, not the machine's: a standby that takes
minutes to boot (or cannot be had at all) holds back no user action. The machine's own moves
(a lost GPU, a migration) are in `failover.py`.

New behaviour (patch `standby-failover`), asked only of machines that have a standby, so others'
histories carry no marker.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import (
        ActivityName,
        AttachKeysInput,
        AttachKeysResult,
        DestroyedInstance,
        DestroyInstancesInput,
        DestroyInstancesResult,
        OwnerKeys,
        OwnerKeysInput,
        ProvisionInput,
    )
    from core.contracts.events import EventType
    from core.contracts.machine import InstanceInfo, MachineKind, MachineSpec
    from core.contracts.records import PendingRecord
    from core.contracts.standby import (
        STANDBY_IMAGE,
        InstanceCheckInput,
        InstanceCheckResult,
        LinkStandbyInput,
        LinkStandbyResult,
        Side,
        StandbyConfig,
        SyncHealth,
        UnlinkStandbyInput,
        standby_label,
    )
    from core.contracts.states import InstanceStatus, MachineState
    from core.regions import region_of
    from workflows.machine import activities
    from workflows.machine.kernel import MachineKernel, failure

S = MachineState
STANDBY_PATCH = "standby-failover"
# A standby is kept in these; a hibernated or deleted machine's workspace is its snapshot.
_NO_STANDBY = frozenset({S.HIBERNATED, S.DELETED, S.DESTROYING, S.DESTROYED})
# Tries of a standby that could not be made or linked, and searches for a GPU on standby:
# the policy's offer retry (30 s), doubling, at most 15 min apart.
_RETRY_MOST = 900
_CREATE_ATTEMPTS = 2
_ALIVE = frozenset({InstanceStatus.RUNNING, InstanceStatus.PROVISIONING, InstanceStatus.UNKNOWN})


def backoff(tries: int, first_seconds: int) -> timedelta:
    return timedelta(seconds=min(first_seconds * 2 ** max(tries - 1, 0), _RETRY_MOST))


def standby_spec(
    config: StandbyConfig, gpu: MachineSpec, gpu_instance: InstanceInfo | None
) -> MachineSpec:
    """The CPU machine to rent: the config's, in the GPU's region (else the continent its
    instance is in), so that the sync crosses no ocean."""
    region = gpu.region
    if region is None and gpu_instance is not None and gpu_instance.geolocation:
        country = gpu_instance.geolocation.rsplit(",", 1)[-1].strip()
        region = region_of(country) if len(country) == 2 else None
    return MachineSpec(
        image=STANDBY_IMAGE,
        disk_gb=config.disk_gb,
        kind=MachineKind.CPU,
        provider=config.provider,
        region=None if config.zone else region,
        max_price=config.max_price,
        machine_type=config.machine_type if config.provider == "gcp" else None,
        zone=config.zone,
        spot=config.spot,
    )


class Standby:
    def __init__(self, kernel: MachineKernel) -> None:
        self.k = kernel
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self._on = False
        # A standby to look at (sync failing, a provider event about it).
        self.check_due = False
        kernel.hooks.serving_instance = self._serving
        kernel.hooks.idle_migrate_seconds = self.idle_migrate_seconds
        kernel.hooks.on_destroy_requested.append(self.cancel)
        kernel.hooks.after_destroy.append(self.remove)
        kernel.hooks.after_hibernate.append(self._hibernated)
        kernel.deadlines.watch("standby", self._deadlines)

    # --- whether this machine has one --------------------------------------------------

    def begin(self, config: StandbyConfig | None) -> None:
        """At the run's start: the create's config (a new machine) or the carried one."""
        st = self.k.s.standby
        if config is not None and not st.config.enabled and st.instance is None:
            st.config = replace(config)
        if st.config.enabled:
            self._on = workflow.patched(STANDBY_PATCH)
        self.k.concurrent_work = self._on

    def enable(self) -> None:
        """Standby enabled by an update (not a validator: it may add a marker)."""
        self._on = self._on or workflow.patched(STANDBY_PATCH)
        self.k.concurrent_work = self._on

    @property
    def on(self) -> bool:
        return self._on and self.k.s.standby.config.enabled

    def ready(self) -> bool:
        """A standby instance that answered SSH."""
        return self.k.s.standby.instance is not None

    def linked(self) -> bool:
        st, s = self.k.s.standby, self.k.s
        return (
            st.instance is not None
            and s.instance is not None
            and st.linked_instance_id == s.instance.instance_id
        )

    def _serving(self) -> InstanceInfo | None:
        s = self.k.s
        if s.standby.side is Side.CPU and s.standby.instance is not None:
            return s.standby.instance
        return s.instance

    def idle_migrate_seconds(self) -> int | None:
        config = self.k.s.standby.config
        if self.on and config.auto_migrate and self.linked():
            return config.idle_migrate_minutes * 60
        return None

    def record(self) -> None:
        """The standby as it stands, to the database (through the outbox)."""
        if self.k.uses_outbox:
            standby = replace(self.k.s.standby, config=replace(self.k.s.standby.config))
            self.k.outbox.add(PendingRecord(number=0, standby=standby))

    # --- the run loop ------------------------------------------------------------------

    def _wanted(self) -> bool:
        return self.on and not self.k.destroy_requested and self.k.s.state not in _NO_STANDBY

    def _deadlines(self) -> list[datetime | None]:
        return [self.k.s.standby.retry_at] if self._wanted() else []

    def work_due(self) -> bool:
        """Standby work to start now (none while its task runs)."""
        if self.task is not None and not self.task.done():
            return False
        if self._remove_due():
            return True
        return self._wanted() and (self.check_due or self._create_due() or self._link_due())

    def _remove_due(self) -> bool:
        """A hibernated machine's workspace is its snapshot: its standby goes."""
        s = self.k.s
        return s.standby.instance is not None and s.state in (S.HIBERNATED, S.DELETED)

    def _retry_passed(self) -> bool:
        at = self.k.s.standby.retry_at
        return at is None or workflow.now() >= at

    def _create_due(self) -> bool:
        return self.k.s.standby.instance is None and self._retry_passed()

    def _link_due(self) -> bool:
        s = self.k.s
        return (
            s.state.is_up()
            and s.standby.side is Side.GPU
            and self.ready()
            and not self.linked()
            and self._retry_passed()
        )

    def kick(self) -> None:
        """Start the due work in the standby's own task; the run loop goes on at once."""
        self.task = asyncio.create_task(self._work())

    async def _work(self) -> None:
        async with self.lock:
            try:
                if self._remove_due():
                    await self.remove_now(
                        f"machine is {self.k.s.state}; its snapshot holds the workspace"
                    )
                    return
                if self.check_due:
                    self.check_due = False
                    await self._check()
                if self._create_due() and self._wanted():
                    await self._create()
                if self._link_due() and self._wanted():
                    await self.link()
            finally:
                self.k.deadlines.check()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # --- make, link, lose --------------------------------------------------------------

    async def _failed(self, problem: str) -> None:
        st = self.k.s.standby
        st.retries += 1
        st.problem = problem
        wait = backoff(st.retries, self.k.policy.wake_offer_retry_seconds)
        st.retry_at = workflow.now() + wait
        self.record()
        await self.k.record_event(
            EventType.STANDBY_FAILED,
            f"standby: {problem}; the GPU machine is not affected; "
            f"tried again in {int(wait.total_seconds())} s",
        )

    async def _create(self) -> None:
        k, s = self.k, self.k.s
        st = s.standby
        st.attempt += 1
        label = standby_label(s.machine_id, st.attempt)
        spec = standby_spec(st.config, s.spec, s.instance)
        try:
            instance = await activities.call(
                ActivityName.PROVISION_INSTANCE,
                ProvisionInput(machine_id=s.machine_id, spec=spec, label=label),
                InstanceInfo,
                k.policy,
                summary=f"rent standby {label}",
                # No standby is worth minutes of retries: this workflow tries again later.
                attempts=_CREATE_ATTEMPTS,
            )
        except ActivityError as err:
            _, message = failure(err)
            await self._destroy(label)  # a create may have landed
            await self._failed(f"not created: {message}")
            return
        await k.record_instance(instance)
        problem = await self._boot(instance)
        if problem is not None:
            await self._destroy(label)
            await self._failed(f"{label} did not come up: {problem}")
            return
        st.instance = instance
        st.problem = st.retry_at = None
        st.retries = 0
        st.health = SyncHealth.UNKNOWN
        self.record()
        where = instance.provider_data.get("zone") or instance.geolocation or instance.provider
        kind = instance.provider_data.get("machine_type") or instance.gpu_name
        await k.record_event(
            EventType.STANDBY_CREATED,
            f"standby {kind} in {where} at ${instance.price_per_hour:.3f}/h",
        )

    async def _boot(self, instance: InstanceInfo) -> str | None:
        """The owner's keys on the standby, then it answers SSH; why not, or None."""
        k, s = self.k, self.k.s
        try:
            keys = await activities.call(
                ActivityName.OWNER_SSH_KEYS,
                OwnerKeysInput(owner_id=s.owner_id),
                OwnerKeys,
                s.policy,
            )
            await self.attach_keys(instance, keys.public_keys)
            deadline = workflow.now() + timedelta(seconds=k.policy.boot_timeout_seconds)
            while workflow.now() < deadline:
                result = await activities.wait_until_ready(instance, deadline, k.policy)
                if result.ready:
                    instance.ssh_host = result.instance.ssh_host
                    instance.ssh_port = result.instance.ssh_port
                    instance.ssh_user = result.instance.ssh_user
                    return None
                await workflow.sleep(timedelta(seconds=k.policy.boot_poll_seconds))
            return f"not up within {k.policy.boot_timeout_seconds} s"
        except ActivityError as err:
            return failure(err)[1]

    async def attach_keys(self, instance: InstanceInfo, keys: list[str]) -> None:
        await activities.call(
            ActivityName.ATTACH_SSH_KEYS,
            AttachKeysInput(instance=instance, public_keys=keys),
            AttachKeysResult,
            self.k.policy,
        )

    async def link(self) -> bool:
        """The GPU machine's agent syncs to the standby from now on."""
        k, s = self.k, self.k.s
        st = s.standby
        assert s.instance is not None and st.instance is not None
        gpu = s.instance
        try:
            linked = await activities.call(
                ActivityName.LINK_STANDBY,
                LinkStandbyInput(
                    machine_id=s.machine_id,
                    gpu=gpu,
                    standby=st.instance,
                    interval_seconds=st.config.sync_interval_seconds,
                    excludes=list(st.config.excludes),
                ),
                LinkStandbyResult,
                k.policy,
                summary=f"link standby {st.instance.instance_id}",
            )
        except ActivityError as err:
            await self._failed(f"sync not set up: {failure(err)[1]}")
            return False
        if s.instance is None or s.instance.instance_id != gpu.instance_id:
            return False  # the GPU changed meanwhile: linked again on the next pass
        st.linked_instance_id = gpu.instance_id
        st.health = SyncHealth.UNKNOWN
        st.problem = st.retry_at = None
        st.retries = 0
        self.record()
        installed = f"; installed {', '.join(linked.installed)}" if linked.installed else ""
        await k.record_event(
            EventType.STANDBY_LINKED,
            f"workspace synced to the standby every {st.config.sync_interval_seconds} s"
            + installed,
        )
        return True

    async def unlink(self) -> None:
        """The GPU's agent stops pushing (a gone GPU is no error)."""
        s = self.k.s
        if s.instance is None:
            return
        try:
            await activities.call(
                ActivityName.UNLINK_STANDBY,
                UnlinkStandbyInput(gpu=s.instance),
                str,
                self.k.policy,
            )
        except ActivityError as err:
            workflow.logger.warning("unlinking the standby failed: %s", failure(err)[1])
        s.standby.linked_instance_id = None

    async def _check(self) -> None:
        """Is the standby still there? A preempted or lost one is replaced."""
        st = self.k.s.standby
        if st.instance is None:
            return
        try:
            seen = await activities.call(
                ActivityName.CHECK_INSTANCE,
                InstanceCheckInput(instance=st.instance),
                InstanceCheckResult,
                self.k.policy,
            )
        except ActivityError as err:
            workflow.logger.warning("checking the standby failed: %s", failure(err)[1])
            return
        if seen.status in _ALIVE:
            return
        await self.lost(seen.detail or f"standby is {seen.status.value}")

    async def lost(self, why: str) -> None:
        """The standby is gone or preempted: removed, and a new one made and linked."""
        st = self.k.s.standby
        lost = st.instance
        await self._destroy_all()
        st.instance = None
        st.linked_instance_id = None
        st.health = SyncHealth.UNKNOWN
        st.retry_at = None
        self.record()
        name = lost.instance_id if lost else "standby"
        await self.k.record_event(
            EventType.STANDBY_LOST, f"{name} lost ({why}); a new standby is being made"
        )

    async def remove(self, why: str = "machine destroyed") -> None:
        """Every standby instance of the machine destroyed (a user destroy, standby disabled):
        the standby's own work is ended first, so that no create lands after the destroy."""
        if not self._on and self.k.s.standby.instance is None:
            return
        self.cancel()
        await workflow.wait_condition(self.idle)
        await self.remove_now(why)

    async def _hibernated(self) -> None:
        await self.remove("hibernated: its snapshot holds the workspace")

    def idle(self) -> bool:
        return self.task is None or self.task.done()

    async def remove_now(self, why: str) -> None:
        st = self.k.s.standby
        had = st.instance
        await self._destroy_all()
        st.instance = None
        st.linked_instance_id = None
        st.side = Side.GPU
        st.reason = None
        st.retry_at = None
        self.record()
        if had is not None:
            await self.k.record_event(
                EventType.STANDBY_REMOVED, f"standby {had.instance_id} destroyed: {why}"
            )

    async def _destroy(self, label: str) -> None:
        await self._destroy_matching(label)

    async def _destroy_all(self) -> None:
        await self._destroy_matching(None)

    async def _destroy_matching(self, label: str | None) -> None:
        s = self.k.s
        destroyed = await activities.call(
            ActivityName.DESTROY_INSTANCES,
            DestroyInstancesInput(
                provider=s.standby.config.provider,
                machine_id=s.machine_id,
                label=label,
                standby=label is None,
            ),
            DestroyInstancesResult,
            self.k.policy,
            summary=f"destroy standby {label or 'instances of ' + s.machine_id}",
        )
        gone = list(destroyed.destroyed)
        known = s.standby.instance
        if label is None and known is not None:
            if all(d.instance_id != known.instance_id for d in gone):
                gone.append(DestroyedInstance(instance_id=known.instance_id, label=known.label))
        if gone:
            await self.k.record_destroyed(gone, s.standby.config.provider)
