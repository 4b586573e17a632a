"""Activities that act on provider instances: provision, wait for SSH, stop/start/reboot, destroy.

Every one is safe to run again: creates go through the machine's deterministic label, destroys
treat "already gone" as done, and waits pick up from the provider's current answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import provider_errors
from activities.heartbeat import heartbeating
from activities.offers import describe_search, in_rental_order, offer_query
from activities.ssh_probe import ssh_answers
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
    ProvisionInput,
    WaitReadyInput,
    WaitReadyResult,
)
from core.contracts.errors import ErrorType
from core.contracts.machine import InstanceInfo, MachineKind, MachineSpec
from core.contracts.providers import ProviderFeature
from core.contracts.standby import machine_of_standby_label, standby_label_prefix
from core.contracts.states import InstanceStatus
from core.offers.reservations import OfferReservations
from core.ssh import SshIdentity
from providers.base import (
    AccountSshKeys,
    CreateRequest,
    InstanceSshKeys,
    Offer,
    OfferSearch,
    OfferUnavailable,
    Provider,
    ProviderInstance,
    Rebootable,
    Stoppable,
    Unsupported,
    offer_search,
    supports,
    unsupported,
    unsupported_map,
    unsupported_reason,
)

# Offers searched beyond those a provision may try: others may claim some first.
CLAIM_SLACK = 20


async def _nothing() -> set[str]:
    return set()


class ProviderLookup(Protocol):
    """What the activities need of `providers.registry.ProviderRegistry`."""

    def get(self, name: str) -> Provider: ...


_KIND_FEATURE = {
    MachineKind.GPU: ProviderFeature.GPU_MACHINES,
    MachineKind.CPU: ProviderFeature.CPU_MACHINES,
}


def is_machine_label(label: str | None, machine_id: str) -> bool:
    """`dumont-{machine_id}-{n}` exactly: machine `a` must not claim machine `a-b`'s labels."""
    prefix = instance_label_prefix(machine_id)
    return label is not None and label.startswith(prefix) and label[len(prefix) :].isdigit()


def instance_info(
    provider: Provider, instance: ProviderInstance, label: str, offer: Offer | None
) -> InstanceInfo:
    return InstanceInfo(
        provider=provider.name,
        instance_id=instance.instance_id,
        label=label,
        # An instance adopted by its label after a lost answer has no known offer.
        offer_id=offer.offer_id if offer else "",
        gpu_name=instance.gpu_name or (offer.gpu_name if offer else ""),
        num_gpus=instance.num_gpus or (offer.num_gpus if offer else 0),
        price_per_hour=instance.price_per_hour or (offer.price_per_hour if offer else 0.0),
        geolocation=instance.geolocation or (offer.geolocation if offer else None),
        ssh_host=instance.ssh_host,
        ssh_port=instance.ssh_port,
        ssh_user=instance.ssh_user,
        provider_data=dict(instance.provider_data),
        unsupported=unsupported_map(provider),
        ports=dict(instance.ports),
        disk_price_per_hour=instance.disk_price_per_hour,
    )


def offers_for(provider: Provider, spec: MachineSpec) -> tuple[OfferSearch, bool]:
    """Where `provider` gets offers for `spec`, and whether they are live offers others may
    rent first (a marketplace) rather than a catalogue; `Unsupported` saying why it cannot."""
    kind = _KIND_FEATURE[spec.kind]
    if not supports(provider, kind):
        raise unsupported(provider, kind)
    if (found := offer_search(provider)) is not None:
        return found
    reasons = [
        unsupported_reason(provider, feature)
        for feature in (ProviderFeature.OFFER_MARKETPLACE, ProviderFeature.MACHINE_CATALOGUE)
    ]
    said = "; ".join(r for r in reasons if r) or "it has no offers"
    raise Unsupported(
        f"cannot provision on {provider.name}: {said}",
        feature=ProviderFeature.OFFER_MARKETPLACE,
    )


class ProviderActivities:
    def __init__(
        self,
        providers: ProviderLookup,
        identity: SshIdentity,
        *,
        offers_per_attempt: int = 5,
        poll_seconds: float = 3.0,
        ssh_timeout_seconds: float = 10.0,
        start_again_seconds: float = 30.0,
        reservations: OfferReservations | None = None,
    ) -> None:
        self._providers = providers
        self._reservations = reservations
        self._identity = identity
        self._key = identity.load()
        self._offers_per_attempt = offers_per_attempt
        self._poll_seconds = poll_seconds
        self._ssh_timeout = ssh_timeout_seconds
        self._start_again = start_again_seconds

    def _provider(self, name: str) -> Provider:
        with provider_errors():
            return self._providers.get(name)

    @activity.defn(name=ActivityName.PROVISION_INSTANCE)
    async def provision_instance(self, input: ProvisionInput) -> InstanceInfo:
        """Rent the cheapest matching offer under `input.label`, or adopt the instance an
        earlier try of this same attempt already made."""
        spec = input.spec
        with provider_errors():
            provider = self._provider(spec.provider)
            search, live = offers_for(provider, spec)
            # Independent reads, at once: each is a round trip, and they add up in every create.
            labelled, held, _ = await asyncio.gather(
                provider.find_by_exact_label(input.label),
                # A catalogue's offers are never rented away: nothing to claim or hold.
                self._held_by_others(provider.name, input.label) if live else _nothing(),
                self._ensure_account_key(provider),
            )
            for existing in labelled:
                if existing.status is not InstanceStatus.GONE:
                    activity.logger.info("adopting instance %s", existing.instance_id)
                    return instance_info(provider, existing, input.label, None)
            excluded = set(input.excluded_offers)
            # Room for offers others claim between this read and our claims (machines created
            # together all search at once).
            limit = self._offers_per_attempt + len(excluded) + len(held) + CLAIM_SLACK
            query = offer_query(spec, limit=limit)
            matching = [o for o in await search(query) if o.offer_id not in excluded]
            if not matching:
                raise ApplicationError(
                    "no offer matches: " + describe_search(spec, excluded=len(excluded)),
                    type=ErrorType.NO_MATCHING_OFFER,
                    non_retryable=True,
                )
            tried = 0
            for offer in in_rental_order([o for o in matching if o.offer_id not in held]):
                if tried == self._offers_per_attempt:
                    break
                if live and not await self._claim(provider.name, offer.offer_id, input.label):
                    continue  # another provision claimed it since the read: not a try
                tried += 1
                activity.heartbeat(offer.offer_id)
                request = CreateRequest(
                    offer_id=offer.offer_id,
                    image=spec.image,
                    disk_gb=spec.disk_gb,
                    label=input.label,
                    env=dict(spec.env),
                    ports=list(spec.ports),
                    ssh_keys=[self._identity.public_key],
                    interruptible=spec.interruptible,
                    bid_price=spec.bid_price if spec.interruptible else None,
                    provider_data=dict(offer.provider_data),
                )
                try:
                    # A create may wait on the provider's operation (GCE: until it runs).
                    async with heartbeating(partial(str, offer.offer_id)):
                        created = await provider.create_instance(request)
                except OfferUnavailable as exc:
                    activity.logger.info(
                        "offer %s unavailable (%s); trying the next", offer.offer_id, exc
                    )
                    continue
                return instance_info(provider, created, input.label, offer)
        # Retryable: the next try searches again and sees fresh offers.
        if not tried:
            raise ApplicationError(
                f"all {len(matching)} matching offers are being rented by other machines",
                type=ErrorType.OFFERS_TAKEN,
            )
        raise ApplicationError(
            f"all {tried} cheapest matching offers were rented by others meanwhile",
            type=ErrorType.OFFERS_TAKEN,
        )

    async def _ensure_account_key(self, provider: Provider) -> None:
        if isinstance(provider, AccountSshKeys):
            await provider.ensure_account_ssh_key(self._identity.public_key)

    async def _held_by_others(self, provider: str, label: str) -> set[str]:
        if self._reservations is None:
            return set()
        return await asyncio.to_thread(self._reservations.held_by_others, provider, label)

    async def _claim(self, provider: str, offer_id: str, label: str) -> bool:
        if self._reservations is None:
            return True
        return await asyncio.to_thread(self._reservations.claim, provider, offer_id, label)

    @activity.defn(name=ActivityName.ATTACH_SSH_KEYS)
    async def attach_ssh_keys(self, input: AttachKeysInput) -> AttachKeysResult:
        provider = self._provider(input.instance.provider)
        if not isinstance(provider, InstanceSshKeys):
            # Dumont's key went in at creation (`CreateRequest.ssh_keys`).
            reason = unsupported_reason(provider, ProviderFeature.INSTANCE_SSH_KEYS)
            detail = (
                f"nothing attached: {provider.name} takes SSH keys only at creation"
                f" ({reason or 'it cannot add keys to a running instance'})"
            )
            activity.logger.info(detail)
            return AttachKeysResult(attached=0, detail=detail)
        keys = list(dict.fromkeys([self._identity.public_key, *input.public_keys]))
        # Heartbeats: a worker that dies here is noticed in seconds, not at the timeout (and
        # GCE's metadata writes wait on an operation each).
        with provider_errors():
            async with heartbeating():
                for key in keys:
                    await provider.attach_ssh_key(input.instance.instance_id, key)
        return AttachKeysResult(attached=len(keys))

    @activity.defn(name=ActivityName.WAIT_UNTIL_READY)
    async def wait_until_ready(self, input: WaitReadyInput) -> WaitReadyResult:
        """Poll until the provider says running and SSH answers with Dumont's key, or until the
        deadline (then `ready=False` with the last thing seen)."""
        info = input.instance
        provider = self._provider(info.provider)
        detail = "waiting for the provider"
        asked_at = time.monotonic()
        while True:
            current = await self._current(provider, info.instance_id)
            if current.status is InstanceStatus.FAILED:
                raise ApplicationError(
                    f"instance {info.instance_id} failed to start: "
                    f"{current.status_msg or current.raw_status or 'no reason given'}",
                    type=ErrorType.INSTANCE_FAILED,
                    non_retryable=True,
                )
            if (
                current.status is InstanceStatus.WAITING_FOR_HOST
                and input.fail_when_waiting_for_host
            ):
                raise ApplicationError(
                    f"instance {info.instance_id} cannot start on its host: "
                    f"{current.status_msg or 'the host has no free GPUs'}",
                    type=ErrorType.HOST_UNAVAILABLE,
                    non_retryable=True,
                )
            info = replace(
                info,
                ssh_host=current.ssh_host,
                ssh_port=current.ssh_port,
                ssh_user=current.ssh_user,
                provider_data={**info.provider_data, **current.provider_data},
                unsupported=unsupported_map(provider),
                # Published only once the instance runs, and a start may move them.
                ports=dict(current.ports),
                disk_price_per_hour=current.disk_price_per_hour,
            )
            if current.status is InstanceStatus.RUNNING and current.ssh_host and current.ssh_port:
                problem = await ssh_answers(
                    current.ssh_host,
                    current.ssh_port,
                    username=current.ssh_user,  # the instance's login, not a global one
                    key=self._key,
                    limit_seconds=self._ssh_timeout,
                )
                if problem is None:
                    return WaitReadyResult(ready=True, instance=info)
                detail = f"SSH at {current.ssh_host}:{current.ssh_port} not answering: {problem}"
            else:
                detail = f"provider reports {current.raw_status or current.status}"
            if (
                current.status is InstanceStatus.WAITING_FOR_HOST
                and isinstance(provider, Stoppable)
                and time.monotonic() - asked_at >= self._start_again
            ):
                # Some clouds do not keep trying a start their zone had no room for (GCE):
                # ask again now and then, so the machine starts once there is room.
                asked_at = time.monotonic()
                with provider_errors():
                    async with heartbeating():
                        await provider.start_instance(info.instance_id)
            activity.heartbeat(detail)
            remaining = (input.deadline - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                return WaitReadyResult(ready=False, instance=info, detail=detail)
            await asyncio.sleep(min(self._poll_seconds, remaining))

    @activity.defn(name=ActivityName.STOP_INSTANCE)
    async def stop_instance(self, input: InstanceActionInput) -> InstanceActionResult:
        """Stop, and return once the provider reports the instance stopped."""
        instance_id = input.instance.instance_id
        provider = self._provider(input.instance.provider)
        with provider_errors():
            if not isinstance(provider, Stoppable):
                raise unsupported(provider, ProviderFeature.STOP_START)
            async with heartbeating():  # GCE answers once its stop operation is done
                await provider.stop_instance(instance_id)
        while True:
            current = await self._current(provider, instance_id)
            if current.status in (InstanceStatus.STOPPED, InstanceStatus.FAILED):
                return InstanceActionResult(instance_id=instance_id, status=current.status)
            activity.heartbeat(current.raw_status)
            await asyncio.sleep(self._poll_seconds)

    @activity.defn(name=ActivityName.START_INSTANCE)
    async def start_instance(self, input: InstanceActionInput) -> InstanceActionResult:
        provider = self._provider(input.instance.provider)
        with provider_errors():
            if not isinstance(provider, Stoppable):
                raise unsupported(provider, ProviderFeature.STOP_START)
            async with heartbeating():  # GCE answers once its start operation is done
                await provider.start_instance(input.instance.instance_id)
        return await self._status(provider, input.instance.instance_id)

    @activity.defn(name=ActivityName.REBOOT_INSTANCE)
    async def reboot_instance(self, input: InstanceActionInput) -> InstanceActionResult:
        provider = self._provider(input.instance.provider)
        with provider_errors():
            if not isinstance(provider, Rebootable):
                raise unsupported(provider, ProviderFeature.REBOOT)
            await provider.reboot_instance(input.instance.instance_id)
        return await self._status(provider, input.instance.instance_id)

    @activity.defn(name=ActivityName.DESTROY_INSTANCES)
    async def destroy_instances(self, input: DestroyInstancesInput) -> DestroyInstancesResult:
        """Destroy every live instance of the machine (or of one attempt's label), found by
        label so that an instance whose create answer was lost is destroyed too."""
        provider = self._provider(input.provider)
        if input.label:
            prefix = input.label
        elif input.standby:
            prefix = standby_label_prefix(input.machine_id)
        else:
            prefix = instance_label_prefix(input.machine_id)
        destroyed: list[DestroyedInstance] = []
        doing: list[str] = []  # the instance being destroyed, for the heartbeat details
        # A slow or rate-limited provider must not look like a dead worker.
        async with heartbeating(lambda: doing[-1] if doing else None):
            with provider_errors():
                found = (
                    await provider.find_by_exact_label(input.label)
                    if input.label
                    else await provider.find_by_label(prefix)
                )
                for instance in found:
                    if input.label:
                        wanted = instance.label == input.label
                    elif input.standby:
                        wanted = machine_of_standby_label(instance.label) == input.machine_id
                    else:
                        wanted = is_machine_label(instance.label, input.machine_id)
                    if not wanted or instance.status is InstanceStatus.GONE:
                        continue
                    doing.append(instance.instance_id)
                    activity.heartbeat(instance.instance_id)
                    await provider.destroy_instance(instance.instance_id)
                    destroyed.append(
                        DestroyedInstance(
                            instance_id=instance.instance_id, label=instance.label or ""
                        )
                    )
        return DestroyInstancesResult(destroyed=destroyed)

    async def _status(self, provider: Provider, instance_id: str) -> InstanceActionResult:
        current = await self._current(provider, instance_id)
        return InstanceActionResult(instance_id=instance_id, status=current.status)

    async def _current(self, provider: Provider, instance_id: str) -> ProviderInstance:
        with provider_errors():
            current = await provider.get_instance(instance_id)
        if current is None or current.status is InstanceStatus.GONE:
            raise ApplicationError(
                f"instance {instance_id} no longer exists at {provider.name}",
                type=ErrorType.INSTANCE_GONE,
                non_retryable=True,
            )
        return current
