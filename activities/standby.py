"""The standby activities of GPU -> CPU failover: link the sync GPU -> standby, unlink it,
one sync now, restore a new GPU machine from the standby, and the provider's word on an
instance. Each reaches the machines over SSH with Dumont's own key; what runs there is in
standby_link.py and standby_restore.py.

All are safe to run again: a link replaces what an earlier one set up, a restore copies only
what differs and checks the whole tree, an unlink of a machine that is gone is done.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import provider_errors
from activities.heartbeat import heartbeating
from activities.provider import ProviderLookup
from activities.standby_link import link, sync_now, unlink
from activities.standby_restore import restore
from activities.standby_shell import address, checked_machine_id, known_hosts_line, reach
from core.contracts.activities import ActivityName
from core.contracts.errors import ErrorType
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
from core.contracts.states import InstanceStatus
from core.ssh import SshIdentity
from providers.base import InstanceNotFound

GPU = "GPU machine"
STANDBY = "standby"


class StandbyActivities:
    def __init__(self, providers: ProviderLookup, identity: SshIdentity) -> None:
        self._providers = providers
        self._identity = identity

    @activity.defn(name=ActivityName.LINK_STANDBY)
    async def link_standby(self, input: LinkStandbyInput) -> LinkStandbyResult:
        checked_machine_id(input.machine_id)
        target = address(input.standby, STANDBY)
        async with heartbeating():
            async with (
                reach(self._identity, input.gpu, GPU) as gpu,
                reach(self._identity, input.standby, STANDBY) as standby,
            ):
                known = known_hosts_line(target[0], target[1], standby.conn)
                result = await link(input, gpu, standby, target, known)
        activity.logger.info("standby of %s linked: %s", input.machine_id, result.detail)
        return result

    @activity.defn(name=ActivityName.UNLINK_STANDBY)
    async def unlink_standby(self, input: UnlinkStandbyInput) -> str:
        """What was done, in words; a machine that cannot be reached has nothing to stop."""
        try:
            async with heartbeating(), reach(self._identity, input.gpu, GPU) as gpu:
                return await unlink(gpu)
        except ApplicationError as exc:
            if exc.type != ErrorType.MACHINE_UNREACHABLE:
                raise
            return f"nothing to stop: {exc.message}"

    @activity.defn(name=ActivityName.SYNC_NOW)
    async def sync_now(self, input: SyncNowInput) -> SyncOutcome:
        async with heartbeating(), reach(self._identity, input.gpu, GPU) as gpu:
            return await sync_now(gpu)

    @activity.defn(name=ActivityName.RESTORE_FROM_STANDBY)
    async def restore_from_standby(
        self, input: RestoreFromStandbyInput
    ) -> RestoreFromStandbyResult:
        checked_machine_id(input.machine_id)
        source = address(input.standby, STANDBY)
        async with heartbeating():
            async with (
                reach(self._identity, input.gpu, GPU) as gpu,
                reach(self._identity, input.standby, STANDBY) as standby,
            ):
                known = known_hosts_line(source[0], source[1], standby.conn)
                result = await restore(input, gpu, standby, source, known)
        activity.logger.info(
            "workspace of %s restored from its standby: %d files, %d bytes received in %.1f s",
            input.machine_id,
            result.files,
            result.bytes_received,
            result.seconds,
        )
        return result

    @activity.defn(name=ActivityName.CHECK_INSTANCE)
    async def check_instance(self, input: InstanceCheckInput) -> InstanceCheckResult:
        info = input.instance
        with provider_errors():
            provider = self._providers.get(info.provider)
            async with heartbeating():
                try:
                    current = await provider.get_instance(info.instance_id)
                except InstanceNotFound:
                    current = None
        if current is None or current.status is InstanceStatus.GONE:
            return InstanceCheckResult(
                status=InstanceStatus.GONE,
                detail=f"instance {info.instance_id} no longer exists at {info.provider}",
            )
        # Each provider says whether the host took it away (vast: from its status message).
        said = current.status_msg or current.raw_status
        return InstanceCheckResult(
            status=current.status, interrupted=current.interrupted, detail=said
        )
