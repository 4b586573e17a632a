"""An in-memory cloud whose activities carry the real activity names, for workflow tests.

Time is the activity's scheduled time as the Temporal server sees it, so on the time-skipping
server a boot delay passes when the workflow's timers are skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.offers import describe_search
from core.contracts import instance_label_prefix
from core.contracts.activities import (
    ActivityName,
    AttachKeysInput,
    AttachKeysResult,
    DestroyedInstance,
    DestroyInstancesInput,
    DestroyInstancesResult,
    InstanceActionInput,
    InstanceActionResult,
    LifecyclePolicyInput,
    OwnerKeys,
    OwnerKeysInput,
    ProvisionInput,
    RecordInstanceInput,
    RecordInstancesDestroyedInput,
    RecordResult,
    RecordStateInput,
    WaitReadyInput,
    WaitReadyResult,
)
from core.contracts.agent import InstallAgentInput, InstallAgentResult
from core.contracts.errors import ErrorType
from core.contracts.hibernation import PreHibernateInput, PreHibernateResult, RecordConfigInput
from core.contracts.machine import InstanceInfo, LifecyclePolicy
from core.contracts.records import PendingEvent, RecordBatchInput, RecordBatchResult
from core.contracts.service import RunOnStartInput, RunOnStartResult
from core.contracts.snapshots import RestoreRequest, RestoreResult, SnapshotRequest, SnapshotResult
from core.contracts.standby import (
    InstanceCheckInput,
    InstanceCheckResult,
    LinkStandbyInput,
    LinkStandbyResult,
    RestoreFromStandbyInput,
    RestoreFromStandbyResult,
    SyncNowInput,
    SyncOutcome,
    UnlinkStandbyInput,
)
from core.contracts.states import InstanceStatus, MachineState


@dataclass
class FakeInstance:
    instance_id: str
    label: str
    offer_id: str
    created_at: datetime
    status: InstanceStatus = InstanceStatus.PROVISIONING
    keys: list[str] = field(default_factory=list)
    # The instance's /workspace: path -> content.
    workspace: dict[str, str] = field(default_factory=dict)


def _now() -> datetime:
    return activity.info().current_attempt_scheduled_time


class FakeCloud:
    def __init__(
        self,
        policy: LifecyclePolicy,
        *,
        offers: Sequence[str] = ("offer-1", "offer-2", "offer-3", "offer-4"),
        boot_seconds: Callable[[int], float] = lambda attempt: 0,
        fail_attempts: int = 0,
        hang_after_create: bool = False,
        owner_keys: Sequence[str] = ("ssh-ed25519 AAAAowner owner@laptop",),
        agent_install_error: str | None = None,
        snapshot_error: str | None = None,
        hook_exit_status: int = 0,
        unsupported: dict[str, str] | None = None,
        on_start_error: str | None = None,
        ssh_user: str = "root",
    ) -> None:
        self.policy = policy
        # The login user the fake provider reports for its instances.
        self.ssh_user = ssh_user
        # (what, user) of every SSH login the workflow asked an activity for.
        self.ssh_logins: list[tuple[str, str]] = []
        self.offers = list(offers)
        self.boot_seconds = boot_seconds  # attempt number (1-based) -> seconds to boot
        self.fail_attempts = fail_attempts  # the first N instances fail to start
        self.hang_after_create = hang_after_create
        self.owner_keys = list(owner_keys)
        # Every agent install fails with this, when set.
        self.agent_install_error = agent_install_error
        self.install_times: list[datetime] = []
        # Run inside every agent install before it returns (an agent that reports at once).
        self.during_install: Callable[[], Awaitable[None]] | None = None
        self.instances: dict[str, FakeInstance] = {}
        self.calls: list[str] = []
        self.events: list[RecordStateInput | PendingEvent] = []
        # The outbox records written so far (by number): a batch sent again writes nothing.
        self.records_applied = 0
        # The database is out: every write fails (and is retried) while this is set.
        self.database_out = False
        self.destroyed: list[str] = []
        self.created = asyncio.Event()
        # Every snapshot attempt fails with this (a store outage), when set.
        self.snapshot_error = snapshot_error
        self.hook_exit_status = hook_exit_status
        # What the fake provider declares it cannot do (ProviderFeature value -> reason).
        self.unsupported = dict(unsupported or {})
        self.hooks_run: list[str] = []
        self.snapshots: dict[str, dict[str, str]] = {}
        self.configs: list[RecordConfigInput] = []
        # Stopped instances whose host's GPUs were taken: a start waits for them (forever).
        self.hosts_taken: set[str] = set()
        # Every on-start the workflow asked for, in order.
        self.on_starts: list[RunOnStartInput] = []
        # Every on-start "exits at once" with this output, when set.
        self.on_start_error = on_start_error
        # Snapshots wait for this, when set (a pause caught while `pausing`).
        self.snapshot_gate: asyncio.Event | None = None

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.lifecycle_policy,
            self.provision_instance,
            self.attach_ssh_keys,
            self.wait_until_ready,
            self.stop_instance,
            self.start_instance,
            self.reboot_instance,
            self.destroy_instances,
            self.record_state,
            self.record_batch,
            self.record_instance,
            self.record_instances_destroyed,
            self.owner_ssh_keys,
            self.install_agent,
            self.record_config,
            self.run_pre_hibernate,
            self.snapshot_workspace,
            self.restore_workspace,
            self.run_on_start,
            *self.standby_activities(),
        ]

    def live(self) -> list[FakeInstance]:
        return [i for i in self.instances.values() if i.status is not InstanceStatus.GONE]

    def states(self) -> list[MachineState]:
        """The machine's state changes: events of failed boots, of the agent and of the
        on-start left out."""
        return [
            e.state
            for e in self.events
            if e.event_type != "boot_failed"
            and not e.event_type.startswith(("agent_", "on_start_"))
        ]

    def _info(self, instance: FakeInstance) -> InstanceInfo:
        return InstanceInfo(
            provider="vast",
            instance_id=instance.instance_id,
            label=instance.label,
            offer_id=instance.offer_id,
            gpu_name="RTX 4090",
            num_gpus=1,
            price_per_hour=0.4,
            geolocation="Lisbon, PT",
            ssh_user=self.ssh_user,
            unsupported=dict(self.unsupported),
        )

    @activity.defn(name=ActivityName.LIFECYCLE_POLICY)
    async def lifecycle_policy(self, input: LifecyclePolicyInput) -> LifecyclePolicy:
        return self.policy

    @activity.defn(name=ActivityName.PROVISION_INSTANCE)
    async def provision_instance(self, input: ProvisionInput) -> InstanceInfo:
        self.calls.append(f"provision {input.label}")
        for instance in self.live():
            if instance.label == input.label:
                return self._info(instance)
        offers = [o for o in self.offers if o not in input.excluded_offers]
        if not offers:
            raise ApplicationError(
                "no offer matches: " + describe_search(input.spec),
                type=ErrorType.NO_MATCHING_OFFER,
                non_retryable=True,
            )
        instance = FakeInstance(
            instance_id=f"i{len(self.instances) + 1}",
            label=input.label,
            offer_id=offers[0],
            created_at=_now(),
        )
        self.instances[instance.instance_id] = instance
        self.created.set()
        if self.hang_after_create:
            # The create landed but its answer never comes back: only a cancel ends this.
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.1)
        return self._info(instance)

    @activity.defn(name=ActivityName.ATTACH_SSH_KEYS)
    async def attach_ssh_keys(self, input: AttachKeysInput) -> AttachKeysResult:
        self.calls.append(f"attach {input.instance.instance_id}")
        self.instances[input.instance.instance_id].keys = list(input.public_keys)
        return AttachKeysResult(attached=len(input.public_keys) + 1)

    @activity.defn(name=ActivityName.WAIT_UNTIL_READY)
    async def wait_until_ready(self, input: WaitReadyInput) -> WaitReadyResult:
        instance = self.instances[input.instance.instance_id]
        attempt = int(instance.label.rsplit("-", 1)[1])
        if attempt <= self.fail_attempts:
            instance.status = InstanceStatus.FAILED
            raise ApplicationError(
                f"instance {instance.instance_id} failed to start: OCI runtime create failed",
                type=ErrorType.INSTANCE_FAILED,
                non_retryable=True,
            )
        if instance.instance_id in self.hosts_taken:
            if input.fail_when_waiting_for_host:
                raise ApplicationError(
                    f"instance {instance.instance_id} cannot start on its host: Scheduling",
                    type=ErrorType.HOST_UNAVAILABLE,
                    non_retryable=True,
                )
            return WaitReadyResult(ready=False, instance=input.instance, detail="Scheduling")
        booted = (_now() - instance.created_at).total_seconds() >= self.boot_seconds(attempt)
        if not booted:
            return WaitReadyResult(ready=False, instance=input.instance, detail="image loading")
        instance.status = InstanceStatus.RUNNING
        ready = InstanceInfo(**{**vars(input.instance), "ssh_host": "127.0.0.1", "ssh_port": 22})
        return WaitReadyResult(ready=True, instance=ready)

    @activity.defn(name=ActivityName.STOP_INSTANCE)
    async def stop_instance(self, input: InstanceActionInput) -> InstanceActionResult:
        return self._set(input, "stop", InstanceStatus.STOPPED)

    @activity.defn(name=ActivityName.START_INSTANCE)
    async def start_instance(self, input: InstanceActionInput) -> InstanceActionResult:
        return self._set(input, "start", InstanceStatus.PROVISIONING)

    @activity.defn(name=ActivityName.REBOOT_INSTANCE)
    async def reboot_instance(self, input: InstanceActionInput) -> InstanceActionResult:
        return self._set(input, "reboot", InstanceStatus.PROVISIONING)

    def _set(
        self, input: InstanceActionInput, what: str, status: InstanceStatus
    ) -> InstanceActionResult:
        self.calls.append(f"{what} {input.instance.instance_id}")
        instance = self.instances[input.instance.instance_id]
        if instance.status is InstanceStatus.GONE:
            raise ApplicationError(
                f"instance {instance.instance_id} no longer exists at vast",
                type=ErrorType.INSTANCE_GONE,
                non_retryable=True,
            )
        instance.status = status
        instance.created_at = _now()
        return InstanceActionResult(instance_id=instance.instance_id, status=status)

    @activity.defn(name=ActivityName.DESTROY_INSTANCES)
    async def destroy_instances(self, input: DestroyInstancesInput) -> DestroyInstancesResult:
        prefix = input.label or instance_label_prefix(input.machine_id)
        gone: list[DestroyedInstance] = []
        for instance in self.live():
            if instance.label == prefix or (not input.label and instance.label.startswith(prefix)):
                instance.status = InstanceStatus.GONE
                self.destroyed.append(instance.instance_id)
                gone.append(
                    DestroyedInstance(instance_id=instance.instance_id, label=instance.label)
                )
        return DestroyInstancesResult(destroyed=gone)

    @activity.defn(name=ActivityName.INSTALL_AGENT)
    async def install_agent(self, input: InstallAgentInput) -> InstallAgentResult:
        self.calls.append(f"install {input.instance.instance_id}")
        self.install_times.append(_now())
        if self.agent_install_error is not None:
            raise ApplicationError(
                self.agent_install_error, type=ErrorType.AGENT_DEPLOY_FAILED, non_retryable=True
            )
        if self.during_install is not None:
            await self.during_install()
        return InstallAgentResult(installed=True, detail="agent running from /opt/dumont-agent")

    @activity.defn(name=ActivityName.RECORD_STATE)
    async def record_state(self, input: RecordStateInput) -> RecordResult:
        self.events.append(input)
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RECORD_BATCH)
    async def record_batch(self, input: RecordBatchInput) -> RecordBatchResult:
        if self.database_out:
            raise RuntimeError("connection to server at 127.0.0.1 failed: connection refused")
        fresh = [r for r in input.records if r.number > self.records_applied]
        for record in fresh:
            if record.event is not None:
                self.events.append(record.event)
            if record.config is not None:
                self.configs.append(
                    RecordConfigInput(machine_id=input.machine_id, config=record.config)
                )
            self.records_applied = record.number
        return RecordBatchResult(applied=len(fresh), applied_through=self.records_applied)

    @activity.defn(name=ActivityName.RECORD_INSTANCE)
    async def record_instance(self, input: RecordInstanceInput) -> RecordResult:
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RECORD_INSTANCES_DESTROYED)
    async def record_instances_destroyed(
        self, input: RecordInstancesDestroyedInput
    ) -> RecordResult:
        return RecordResult(written=len(input.instances))

    @activity.defn(name=ActivityName.OWNER_SSH_KEYS)
    async def owner_ssh_keys(self, input: OwnerKeysInput) -> OwnerKeys:
        return OwnerKeys(public_keys=list(self.owner_keys))

    @activity.defn(name=ActivityName.RECORD_CONFIG)
    async def record_config(self, input: RecordConfigInput) -> RecordResult:
        self.configs.append(input)
        return RecordResult(written=1)

    @activity.defn(name=ActivityName.RUN_PRE_HIBERNATE)
    async def run_pre_hibernate(self, input: PreHibernateInput) -> PreHibernateResult:
        self.hooks_run.append(input.command)
        self.ssh_logins.append(("hook", input.instance.ssh_user))
        ok = self.hook_exit_status == 0
        return PreHibernateResult(
            ok=ok, exit_status=self.hook_exit_status, output="" if ok else "checkpoint failed"
        )

    def _running(self) -> FakeInstance:
        """The machine's one running instance (one machine per FakeCloud)."""
        (instance,) = [i for i in self.live() if i.status is InstanceStatus.RUNNING]
        return instance

    @activity.defn(name=ActivityName.SNAPSHOT_WORKSPACE)
    async def snapshot_workspace(self, request: SnapshotRequest) -> SnapshotResult:
        self.calls.append(f"snapshot {request.snapshot_id}")
        self.ssh_logins.append(("snapshot", request.ssh_user))
        if self.snapshot_gate is not None:
            await self.snapshot_gate.wait()
        if self.snapshot_error is not None:
            raise ApplicationError(self.snapshot_error, type=ErrorType.SNAPSHOT_FAILED)
        files = dict(self._running().workspace)
        self.snapshots[request.snapshot_id] = files
        size = sum(len(v) for v in files.values())
        return SnapshotResult(
            snapshot_id=request.snapshot_id,
            root_hash=f"root-{size}",
            files=len(files),
            logical_bytes=size,
            uploaded_bytes=size,
            stored_bytes=size,
            packs=1,
            seconds=0.1,
        )

    @activity.defn(name=ActivityName.RESTORE_WORKSPACE)
    async def restore_workspace(self, request: RestoreRequest) -> RestoreResult:
        self.calls.append(f"restore {request.snapshot_id}")
        self.ssh_logins.append(("restore", request.ssh_user))
        files = self.snapshots[request.snapshot_id]
        self._running().workspace = dict(files)
        size = sum(len(v) for v in files.values())
        return RestoreResult(
            snapshot_id=request.snapshot_id,
            root_hash=f"root-{size}",
            files=len(files),
            bytes=size,
            downloaded_bytes=size,
            seconds=0.1,
        )

    @activity.defn(name=ActivityName.RUN_ON_START)
    async def run_on_start(self, input: RunOnStartInput) -> RunOnStartResult:
        self.calls.append(f"on-start {input.instance.instance_id}")
        self.on_starts.append(input)
        if self.on_start_error is not None:
            return RunOnStartResult(
                started=False,
                exit_status=127,
                detail=f"exited with status 127 at once: {self.on_start_error}",
            )
        return RunOnStartResult(started=True)

    # --- the standby's (stand-ins: the failover's workflow tests may make them richer) ------

    def standby_activities(self) -> list[Callable[..., Any]]:
        return [
            self.link_standby,
            self.unlink_standby,
            self.sync_now,
            self.restore_from_standby,
            self.check_instance,
        ]

    @activity.defn(name=ActivityName.LINK_STANDBY)
    async def link_standby(self, input: LinkStandbyInput) -> LinkStandbyResult:
        self.calls.append(f"link {input.gpu.instance_id} -> {input.standby.instance_id}")
        return LinkStandbyResult()

    @activity.defn(name=ActivityName.UNLINK_STANDBY)
    async def unlink_standby(self, input: UnlinkStandbyInput) -> str:
        self.calls.append(f"unlink {input.gpu.instance_id}")
        return "removed"

    @activity.defn(name=ActivityName.SYNC_NOW)
    async def sync_now(self, input: SyncNowInput) -> SyncOutcome:
        self.calls.append(f"sync {input.gpu.instance_id}")
        return SyncOutcome(completed_at=_now(), seconds=0.0, bytes_sent=0)

    @activity.defn(name=ActivityName.RESTORE_FROM_STANDBY)
    async def restore_from_standby(
        self, input: RestoreFromStandbyInput
    ) -> RestoreFromStandbyResult:
        self.calls.append(f"restore {input.standby.instance_id} -> {input.gpu.instance_id}")
        return RestoreFromStandbyResult(
            files=0, bytes_total=0, bytes_received=0, seconds=0.0, tree_hash=""
        )

    @activity.defn(name=ActivityName.CHECK_INSTANCE)
    async def check_instance(self, input: InstanceCheckInput) -> InstanceCheckResult:
        found = self.instances.get(input.instance.instance_id)
        return InstanceCheckResult(status=found.status if found else InstanceStatus.GONE)
