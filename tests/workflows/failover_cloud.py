"""The fake cloud with a CPU standby: standby instances (labels `dumont-{id}-sb{n}`) rent from
their own offers, and the sync, the restore and the provider's check act on the fakes'
workspaces, for the failover workflow tests. The real activities are tested against the sim in
tests/activities/ and end to end in tests/failover/."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.provider import is_machine_label
from core.contracts.activities import (
    ActivityName,
    DestroyedInstance,
    DestroyInstancesInput,
    DestroyInstancesResult,
    ProvisionInput,
    WaitReadyInput,
    WaitReadyResult,
)
from core.contracts.errors import ErrorType
from core.contracts.machine import InstanceInfo, MachineKind
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
    machine_of_standby_label,
)
from core.contracts.states import InstanceStatus
from tests.workflows.fakes import FakeCloud, FakeInstance, _now


class FailoverCloud(FakeCloud):
    def __init__(self, *args: Any, cpu_offers: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cpu_offers = ["cpu-1", "cpu-2", "cpu-3"] if cpu_offers is None else cpu_offers
        # GPU instance id -> the standby instance id its agent pushes to.
        self.links: dict[str, str] = {}
        self.restores: list[tuple[str, str]] = []  # (standby, gpu)
        self.sync_error: str | None = None

    # --- what the tests look at ------------------------------------------------------------

    def standbys(self) -> list[FakeInstance]:
        return [i for i in self.live() if machine_of_standby_label(i.label)]

    def gpus(self) -> list[FakeInstance]:
        return [i for i in self.live() if not machine_of_standby_label(i.label)]

    def sync(self) -> None:
        """One sync as the GPU's agent would run it: every linked GPU's workspace, copied."""
        for gpu_id, standby_id in self.links.items():
            gpu, standby = self.instances[gpu_id], self.instances[standby_id]
            if gpu.status is InstanceStatus.RUNNING and standby.status is InstanceStatus.RUNNING:
                standby.workspace = dict(gpu.workspace)

    def _running(self) -> FakeInstance:
        """The instance holding the workspace: the GPU when one runs, else the standby."""
        running = [i for i in self.live() if i.status is InstanceStatus.RUNNING]
        gpus = [i for i in running if not machine_of_standby_label(i.label)]
        (instance,) = gpus or running
        return instance

    # --- provider overrides ----------------------------------------------------------------

    def _info(self, instance: FakeInstance) -> InstanceInfo:
        info = super()._info(instance)
        if machine_of_standby_label(instance.label):
            info.gpu_name = "e2-medium"
            info.num_gpus = 0
            info.price_per_hour = 0.012
            info.provider = "gcp"
            info.ssh_user = "dumont"
            info.provider_data = {"zone": "europe-west1-b", "machine_type": "e2-medium"}
        return info

    @activity.defn(name=ActivityName.PROVISION_INSTANCE)
    async def provision_instance(self, input: ProvisionInput) -> InstanceInfo:
        if input.spec.kind is not MachineKind.CPU:
            return await super().provision_instance(input)
        self.calls.append(f"provision {input.label}")
        for instance in self.live():
            if instance.label == input.label:
                return self._info(instance)
        if not self.cpu_offers:
            raise ApplicationError(
                "no CPU offer: every zone is out of e2-medium",
                type=ErrorType.NO_MATCHING_OFFER,
                non_retryable=True,
            )
        instance = FakeInstance(
            instance_id=f"i{len(self.instances) + 1}",
            label=input.label,
            offer_id=self.cpu_offers[0],
            created_at=_now(),
        )
        self.instances[instance.instance_id] = instance
        return self._info(instance)

    @activity.defn(name=ActivityName.WAIT_UNTIL_READY)
    async def wait_until_ready(self, input: WaitReadyInput) -> WaitReadyResult:
        instance = self.instances[input.instance.instance_id]
        if not machine_of_standby_label(instance.label):
            return await super().wait_until_ready(input)
        instance.status = InstanceStatus.RUNNING
        ready = InstanceInfo(**{**vars(input.instance), "ssh_host": "127.64.0.9", "ssh_port": 22})
        return WaitReadyResult(ready=True, instance=ready)

    @activity.defn(name=ActivityName.DESTROY_INSTANCES)
    async def destroy_instances(self, input: DestroyInstancesInput) -> DestroyInstancesResult:
        gone: list[DestroyedInstance] = []
        for instance in self.live():
            if input.label:
                wanted = instance.label == input.label
            elif input.standby:
                wanted = machine_of_standby_label(instance.label) == input.machine_id
            else:
                wanted = is_machine_label(instance.label, input.machine_id)
            if wanted:
                instance.status = InstanceStatus.GONE
                self.destroyed.append(instance.instance_id)
                self.links = {
                    g: s for g, s in self.links.items() if instance.instance_id not in (g, s)
                }
                gone.append(
                    DestroyedInstance(instance_id=instance.instance_id, label=instance.label)
                )
        return DestroyInstancesResult(destroyed=gone)

    # --- the standby's activities -------------------------------------------------------------

    @activity.defn(name=ActivityName.LINK_STANDBY)
    async def link_standby(self, input: LinkStandbyInput) -> LinkStandbyResult:
        self.calls.append(f"link {input.gpu.instance_id}->{input.standby.instance_id}")
        self.links[input.gpu.instance_id] = input.standby.instance_id
        self.sync()
        return LinkStandbyResult(installed=[])

    @activity.defn(name=ActivityName.UNLINK_STANDBY)
    async def unlink_standby(self, input: UnlinkStandbyInput) -> str:
        self.calls.append(f"unlink {input.gpu.instance_id}")
        self.links.pop(input.gpu.instance_id, None)
        return "sync file removed"

    @activity.defn(name=ActivityName.SYNC_NOW)
    async def sync_now(self, input: SyncNowInput) -> SyncOutcome:
        self.calls.append(f"sync {input.gpu.instance_id}")
        if self.sync_error is not None:
            raise ApplicationError(
                self.sync_error, type=ErrorType.MACHINE_UNREACHABLE, non_retryable=True
            )
        self.sync()
        return SyncOutcome(completed_at=_now(), seconds=0.2, bytes_sent=42)

    @activity.defn(name=ActivityName.RESTORE_FROM_STANDBY)
    async def restore_from_standby(
        self, input: RestoreFromStandbyInput
    ) -> RestoreFromStandbyResult:
        self.calls.append(f"restore-from {input.standby.instance_id}->{input.gpu.instance_id}")
        self.restores.append((input.standby.instance_id, input.gpu.instance_id))
        files = dict(self.instances[input.standby.instance_id].workspace)
        self.instances[input.gpu.instance_id].workspace = files
        size = sum(len(v) for v in files.values())
        return RestoreFromStandbyResult(
            files=len(files), bytes_total=size, bytes_received=size, seconds=0.1, tree_hash="h"
        )

    @activity.defn(name=ActivityName.CHECK_INSTANCE)
    async def check_instance(self, input: InstanceCheckInput) -> InstanceCheckResult:
        self.calls.append(f"check {input.instance.instance_id}")
        instance = self.instances.get(input.instance.instance_id)
        status = instance.status if instance else InstanceStatus.GONE
        return InstanceCheckResult(status=status, detail=f"{status.value} at the provider")
