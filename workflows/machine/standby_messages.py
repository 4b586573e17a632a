"""The standby's messages: its config (validated, applied, a reshaped standby replaced, a
resynced one relinked, a disabled one retired), the sync's health transitions from the API,
the provider's word on the standby's instance, and the owner's keys reaching it. The standby
itself (made, linked, lost, removed) is `standby.py`."""

from __future__ import annotations

from dataclasses import replace

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.contracts.activities import ActivityName, OwnerKeys, OwnerKeysInput
    from core.contracts.errors import ErrorType
    from core.contracts.events import EventType
    from core.contracts.standby import (
        ProviderEvent,
        Side,
        StandbyConfig,
        StandbyConfigInput,
        StandbyView,
        SyncHealth,
        SyncReport,
        standby_config_problem,
    )
    from core.contracts.states import MachineState
    from workflows.machine import activities
    from workflows.machine.kernel import MachineKernel, reject
    from workflows.machine.standby import Standby

S = MachineState


def _reshapes(before: StandbyConfig, after: StandbyConfig) -> bool:
    """A change that needs another standby instance."""
    shape = ("provider", "machine_type", "zone", "spot", "disk_gb", "max_price")
    return any(getattr(before, name) != getattr(after, name) for name in shape)


def _resyncs(before: StandbyConfig, after: StandbyConfig) -> bool:
    return (before.sync_interval_seconds, before.excludes) != (
        after.sync_interval_seconds,
        after.excludes,
    )


class StandbyMessages:
    def __init__(self, kernel: MachineKernel, standby: Standby) -> None:
        self.k = kernel
        self.standby = standby

    def validate_config(self, input: StandbyConfigInput) -> None:
        problem = standby_config_problem(input.config)
        if problem is not None:
            field_name, why = problem
            reject(f"{field_name}: {why}", ErrorType.INVALID_INPUT)
        s = self.k.s
        if s.state in (S.STANDBY, S.FAILING_OVER) and _reshapes(s.standby.config, input.config):
            reject("machine runs on (or is moving to) its standby; migrate it to a GPU first")

    async def configure(self, input: StandbyConfigInput) -> StandbyView:
        k, s = self.k, self.k.s
        st = s.standby
        before, after = st.config, replace(input.config, excludes=list(input.config.excludes))
        # Applied in the activation the validator accepted it in: no later message sees the
        # old config.
        st.config = after
        if after.enabled:
            self.standby.enable()
        self.standby.record()
        why = f" ({input.reason})" if input.reason else ""
        if before.enabled and not after.enabled:
            await k.record_event(EventType.STANDBY_REMOVED, f"standby disabled{why}")
            await self._retire("standby disabled")
        elif after.enabled and not before.enabled:
            kind = after.machine_type or "CPU offer"
            await k.record_event(
                EventType.STANDBY_ENABLED,
                f"standby enabled{why}: a {after.provider} {kind} standby is being made",
            )
        elif st.instance is not None and _reshapes(before, after):
            await self._retire("standby settings changed; a new standby is being made")
        elif _resyncs(before, after):
            st.linked_instance_id = None  # linked again with the new interval and excludes
        st.retry_at = None
        k.deadlines.check()
        await k.answered()
        return StandbyView(machine_id=s.machine_id, state=s.state, standby=st)

    async def _retire(self, why: str) -> None:
        """The GPU's agent stops pushing, then the standby goes."""
        self.standby.cancel()
        await workflow.wait_condition(self.standby.idle)
        async with self.standby.lock:
            if self.standby.linked():
                await self.standby.unlink()
            await self.standby.remove_now(why)

    async def attach_owner_keys(self) -> None:
        """The owner's keys changed: the standby gets them too."""
        st = self.k.s.standby
        assert st.instance is not None
        keys = await activities.call(
            ActivityName.OWNER_SSH_KEYS,
            OwnerKeysInput(owner_id=self.k.s.owner_id),
            OwnerKeys,
            self.k.s.policy,
        )
        await self.standby.attach_keys(st.instance, keys.public_keys)

    async def sync_reported(self, report: SyncReport) -> None:
        if not self.on_sync(report):
            return
        st = self.k.s.standby
        self.standby.record()
        if st.health is SyncHealth.FAILING:
            await self.k.record_event(
                EventType.SYNC_FAILING, f"sync to the standby failing: {st.sync_error or '?'}"
            )
        else:
            await self.k.record_event(EventType.SYNC_HEALTHY, "sync to the standby healthy again")
        self.k.deadlines.check()

    def on_sync(self, report: SyncReport) -> bool:
        """A sync health transition; True when it changed what the workflow knows."""
        s, st = self.k.s, self.k.s.standby
        if not self.standby.on or st.side is not Side.GPU:
            return False
        if report.instance_id is not None and (
            s.instance is None or report.instance_id != s.instance.instance_id
        ):
            return False  # a late report of a GPU since replaced
        if report.last_success_at is not None:
            if st.last_sync_at is None or report.last_success_at > st.last_sync_at:
                st.last_sync_at = report.last_success_at
        if report.health is st.health:
            return False
        st.health = report.health
        st.sync_error = report.error if report.health is SyncHealth.FAILING else None
        if report.health is SyncHealth.FAILING:
            self.standby.check_due = True  # a preempted standby shows first as a failing sync
        return True

    def on_provider_event(self, event: ProviderEvent) -> bool:
        """An event about the standby's instance: True when it was one (looked at next)."""
        st = self.k.s.standby
        if st.instance is None or event.instance_id != st.instance.instance_id:
            return False
        self.standby.check_due = True
        self.k.deadlines.check()
        return True
