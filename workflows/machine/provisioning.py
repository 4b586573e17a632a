"""Provisioning and the lifecycle actions: rent an instance (the cheapest matching offer, the
next one when a boot fails), wait until it answers SSH, stop / start / restart it, and destroy
every instance carrying the machine's label prefix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.contracts import instance_label
    from core.contracts.activities import (
        ActivityName,
        AttachKeysInput,
        AttachKeysResult,
        DestroyedInstance,
        DestroyInstancesInput,
        DestroyInstancesResult,
        InstanceActionInput,
        InstanceActionResult,
        OwnerKeys,
        OwnerKeysInput,
        ProvisionInput,
    )
    from core.contracts.errors import ErrorType
    from core.contracts.events import EventType
    from core.contracts.machine import InstanceInfo, MachineSpec
    from core.contracts.providers import ProviderFeature
    from core.contracts.states import MachineState
    from workflows.machine import activities
    from workflows.machine.kernel import MachineKernel, failure, reject
    from workflows.machine.transitions import Action

S = MachineState

# The provider feature each instance action needs.
_NEEDS = {
    Action.STOP: ProviderFeature.STOP_START,
    Action.START: ProviderFeature.STOP_START,
    Action.PAUSE: ProviderFeature.STOP_START,
    Action.RESTART: ProviderFeature.REBOOT,
}


@dataclass
class NotRented:
    """Why provisioning found no instance; `no_offer` when nothing matched at all."""

    problem: str
    no_offer: bool = False


class Provisioning:
    def __init__(self, kernel: MachineKernel) -> None:
        self.k = kernel

    def validate_supported(self, action: Action) -> None:
        """The machine's provider can do `action` to its instance (its own reason if not)."""
        feature = _NEEDS.get(action)
        instance = self.k.s.instance
        if feature is not None and instance is not None and feature in instance.unsupported:
            reject(instance.unsupported[feature], ErrorType.UNSUPPORTED)

    # --- create and boot ---------------------------------------------------------------

    async def create(self) -> None:
        await self.k.transition(S.STARTING, EventType.PROVISIONING)
        await self.provision()

    async def provision(self) -> None:
        """Provision for a create, or a start of a machine whose instance is gone: running, or
        error with the reason."""
        outcome = await self.rent(self.k.s.spec)
        if outcome is not None:
            await self.k.transition(S.ERROR, EventType.ERROR, outcome.problem)
            return
        await self.up("create", EventType.RUNNING)

    async def rent(self, spec: MachineSpec) -> NotRented | None:
        """Rent the cheapest offer matching `spec` and wait until it answers SSH (and passes
        every `on_ready` hook: a hibernated workspace restored); None when it does. An instance
        that fails or misses its boot deadline is destroyed and the next attempt goes
        elsewhere."""
        k, s = self.k, self.k.s
        policy = k.policy
        failures: list[str] = []
        for _ in range(policy.provision_attempts):
            k.stop_if_destroyed()
            # Saved before the activity runs: a retried create reuses this label.
            s.attempt += 1
            label = instance_label(s.machine_id, s.attempt)
            try:
                instance = await activities.call(
                    ActivityName.PROVISION_INSTANCE,
                    ProvisionInput(
                        machine_id=s.machine_id,
                        spec=spec,
                        label=label,
                        excluded_offers=list(s.failed_offers),
                    ),
                    InstanceInfo,
                    policy,
                    summary=f"rent {label}",
                )
            except ActivityError as err:
                error_type, message = failure(err)
                no_offer = error_type == ErrorType.NO_MATCHING_OFFER
                if not no_offer:
                    await self.destroy_attempt(label)  # a create may have landed
                return NotRented(message, no_offer=no_offer)
            s.instance = instance
            await k.record_instance(instance)
            try:
                await self.attach_keys()
                problem = await self.wait_until_ready()
            except ActivityError as err:
                _, problem = failure(err)
            for hook in k.hooks.on_ready:
                if problem is None:
                    problem = await hook()
            if problem is None:
                return None
            where = instance.geolocation or "unknown location"
            failures.append(f"attempt {s.attempt} ({instance.gpu_name}, {where}): {problem}")
            if instance.offer_id:
                s.failed_offers.append(instance.offer_id)
            await k.record_event(EventType.BOOT_FAILED, failures[-1])
            await self.destroy_attempt(label)
            s.instance = None
            s.boot_deadline = None
        return NotRented(
            f"no instance came up after {len(failures)} attempts: " + "; ".join(failures)
        )

    async def wait_until_ready(
        self, seconds: int | None = None, *, fail_when_waiting_for_host: bool = False
    ) -> str | None:
        """None once the instance answers SSH; otherwise why it did not by the boot deadline
        (`seconds` from now, the policy's boot timeout unless given)."""
        s = self.k.s
        policy = self.k.policy
        limit = policy.boot_timeout_seconds if seconds is None else seconds
        deadline = workflow.now() + timedelta(seconds=limit)
        s.boot_deadline = deadline
        detail = "no answer yet"
        while True:
            self.k.stop_if_destroyed()
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return f"not up within {limit} s ({detail})"
            assert s.instance is not None
            try:
                result = await activities.wait_until_ready(
                    s.instance,
                    deadline,
                    policy,
                    fail_when_waiting_for_host=fail_when_waiting_for_host,
                )
            except ActivityError as err:
                error_type, message = failure(err)
                if error_type == ErrorType.TIMEOUT:
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

    async def boot(self, what: str) -> None:
        """Wait for the current instance to answer SSH: running, or error with the reason."""
        problem = await self.wait_until_ready()
        if problem is None:
            await self.up(what, EventType.RUNNING)
        else:
            await self.k.transition(S.ERROR, EventType.ERROR, f"{what} failed: {problem}")

    async def up(self, what: str, event_type: EventType, how: str | None = None) -> None:
        """The instance answers SSH: every after-boot hook (the agent's install, the idleness
        grace period), then the machine is running, with `how` and the hooks' reasons if any
        (the workload must not depend on them)."""
        # At once, not one after the other: the agent's install and the service's on-start are
        # both on the path to running (a resume waits for them).
        found = await asyncio.gather(*(hook(what) for hook in self.k.hooks.after_boot))
        reasons = ([how] if how else []) + [reason for reason in found if reason is not None]
        await self.k.transition(S.RUNNING, event_type, "; ".join(reasons) or None)

    async def attach_keys(self) -> None:
        """The owner's keys on the instance. While the database is out, the keys last read."""
        s = self.k.s
        assert s.instance is not None
        try:
            keys = await activities.call(
                ActivityName.OWNER_SSH_KEYS,
                OwnerKeysInput(owner_id=s.owner_id),
                OwnerKeys,
                s.policy,
                local=self.k.reads_locally,
            )
            s.owner_keys = keys.public_keys
        except ActivityError as err:
            if s.owner_keys is None:
                raise
            workflow.logger.warning("owner keys unreadable, using the last read: %s", err)
            keys = OwnerKeys(public_keys=list(s.owner_keys))
        await activities.call(
            ActivityName.ATTACH_SSH_KEYS,
            AttachKeysInput(instance=s.instance, public_keys=keys.public_keys),
            AttachKeysResult,
            s.policy,
        )

    # --- actions -----------------------------------------------------------------------

    async def instance_action(self, name: ActivityName, instance: InstanceInfo) -> None:
        await activities.call(
            name,
            InstanceActionInput(instance=instance),
            InstanceActionResult,
            self.k.policy,
            summary=f"{name.removesuffix('_instance')} {instance.instance_id}",
        )

    async def stop(self, reason: str | None) -> None:
        instance = self.k.require_instance()
        await self.k.transition(S.STOPPING, EventType.STOP_REQUESTED, reason)
        await self.instance_action(ActivityName.STOP_INSTANCE, instance)
        await self.k.transition(S.STOPPED, EventType.STOPPED, reason)

    async def start(self, reason: str | None) -> None:
        await self.k.transition(S.STARTING, EventType.START_REQUESTED, reason)
        instance = self.k.s.instance
        if instance is None:
            await self.provision()
            return
        await self.instance_action(ActivityName.START_INSTANCE, instance)
        await self.attach_keys()
        await self.boot("start")

    async def restart(self, reason: str | None) -> None:
        instance = self.k.require_instance()
        await self.k.transition(S.RESTARTING, EventType.RESTART_REQUESTED, reason)
        await self.instance_action(ActivityName.REBOOT_INSTANCE, instance)
        await self.boot("restart")

    async def destroy(self, reason: str | None) -> None:
        s = self.k.s
        await self.k.transition(S.DESTROYING, EventType.DESTROY_REQUESTED, reason)
        await self.destroy_all()
        for hook in self.k.hooks.after_destroy:  # a user destroy removes the standby too
            await hook()
        s.instance = None
        s.boot_deadline = None
        await self.k.transition(S.DESTROYED, EventType.DESTROYED, reason)

    async def destroy_all(self) -> None:
        """Destroy every instance carrying the machine's label prefix and record them gone,
        the current one included even when a destroy that landed while a worker died left the
        retried activity nothing to find (otherwise it would look billing forever)."""
        s = self.k.s
        destroyed = await self._destroy(
            DestroyInstancesInput(provider=s.spec.provider, machine_id=s.machine_id)
        )
        gone = list(destroyed.destroyed)
        known = s.instance
        if known is not None and all(d.instance_id != known.instance_id for d in gone):
            gone.append(DestroyedInstance(instance_id=known.instance_id, label=known.label))
        await self.k.record_destroyed(gone)

    async def destroy_attempt(self, label: str) -> None:
        s = self.k.s
        destroyed = await self._destroy(
            DestroyInstancesInput(provider=s.spec.provider, machine_id=s.machine_id, label=label)
        )
        if destroyed.destroyed:
            await self.k.record_destroyed(destroyed.destroyed)

    async def _destroy(self, input: DestroyInstancesInput) -> DestroyInstancesResult:
        return await activities.call(
            ActivityName.DESTROY_INSTANCES,
            input,
            DestroyInstancesResult,
            self.k.policy,
            summary=f"destroy {input.label or 'every instance of ' + input.machine_id}",
        )
