"""The GCP provider: CPU VMs on Compute Engine through the official `google-cloud-compute`
client. Runs unchanged against Google and against the GCE-compatible endpoint in sim/.

Every mutating call is safe to repeat: creates are named after the machine's label (and carry
a requestId derived from that name), so a create whose answer was lost finds its instance; the
other mutations carry a requestId kept across their own retries; a delete of a gone instance
is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import ClassVar

from google.cloud import compute_v1

from core.contracts.providers import ProviderFeature
from core.contracts.states import InstanceStatus
from core.settings import Settings
from providers.base import (
    CreateRequest,
    InstanceNotFound,
    Offer,
    OfferQuery,
    ProviderError,
    ProviderInstance,
    Unconfigured,
)
from providers.gcp.catalogue import ZONES, zones_of
from providers.gcp.compute import Compute
from providers.gcp.credentials import credentials_for
from providers.gcp.errors import AlreadyExists, FingerprintStale, ZoneExhausted
from providers.gcp.listing import (
    aggregated_instances,
    aggregated_operations,
    parse_timestamp,
    zone_operations,
)
from providers.gcp.naming import (
    insert_request_id,
    instance_labels,
    instance_name,
    label_filter,
    new_request_id,
    split_instance_id,
)
from providers.gcp.offers import (
    MACHINE_TYPE_KEY,
    PROVIDER_NAME,
    SPOT_KEY,
    ZONE_KEY,
    ZONE_PINNED_KEY,
    catalogue_offers,
)
from providers.gcp.stopped import PREEMPTED, StopReason, stop_reason
from providers.gcp.wire import (
    SSH_KEYS,
    instance_resource,
    key_identity,
    parse_instance,
)

log = logging.getLogger(__name__)

# A zone that just stocked out is not asked again for this long (a fleet created together
# would otherwise each hit the same empty zone first).
STOCKOUT_MEMORY_SECONDS = 300.0
METADATA_ATTEMPTS = 5


class GcpProvider:
    """`Provider` for Compute Engine CPU VMs, with stop/start and per-instance SSH keys."""

    name = PROVIDER_NAME
    UNSUPPORTED: ClassVar[dict[ProviderFeature, str]] = {
        ProviderFeature.GPU_MACHINES: "Dumont rents CPU VMs on GCP (GPUs come from vast.ai)",
        ProviderFeature.OFFER_MARKETPLACE: "GCP sells machine types from a catalogue",
        ProviderFeature.REBOOT: "GCP machines restart with a stop and a start",
        ProviderFeature.ACCOUNT_SSH_KEYS: "GCP keys go on each instance's metadata",
    }

    # Pauses between tries of a start that found its zone out of capacity.
    START_RETRY_SECONDS: ClassVar[tuple[float, ...]] = (2.0, 5.0)

    def __init__(
        self,
        compute: Compute,
        *,
        installation: str,
        ssh_user: str = "dumont",
        ssh_port: int = 22,
    ) -> None:
        self._compute = compute
        self._installation = installation
        self._ssh_user = ssh_user
        self._ssh_port = ssh_port
        self._stockouts: dict[tuple[str, str, bool], float] = {}
        # Inserts whose operation failed, by (name, zone): their next try needs a new id. Lost
        # with the process, which costs one replayed failure after a restart, nothing more.
        self._failed_inserts: dict[tuple[str, str], int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> GcpProvider | Unconfigured:
        if settings.gcp_project is None:
            return Unconfigured(cls.name, "set DUMONT_GCP_PROJECT (or GOOGLE_CLOUD_PROJECT)")
        credentials = credentials_for(settings.gcp_credentials)
        if isinstance(credentials, str):
            return Unconfigured(cls.name, credentials)
        compute = Compute(settings.gcp_project, credentials, endpoint=settings.gcp_endpoint)
        return cls(
            compute,
            installation=settings.installation_id or "default",
            ssh_user=settings.gcp_ssh_user,
            ssh_port=settings.gcp_ssh_port,
        )

    def __repr__(self) -> str:
        return f"GcpProvider(project={self._compute.project!r})"

    async def aclose(self) -> None:
        self._compute.close()

    # --- offers ---------------------------------------------------------------------------

    async def catalogue_offers(self, query: OfferQuery) -> list[Offer]:
        return catalogue_offers(query)

    # --- create ---------------------------------------------------------------------------

    async def create_instance(self, request: CreateRequest) -> ProviderInstance:
        """Create under `request.label` in the offer's zone, moving to the region's next zone
        on a stockout (unless the user chose the zone); or adopt the instance an earlier try
        made. Raises `ZoneExhausted` (an `OfferUnavailable`) when every zone tried is out, so
        the caller moves on to its next offer (the next region)."""
        if existing := await self._live_with_label(request.label):
            return existing
        name = instance_name(request.label, self._installation)
        zone = request.provider_data.get(ZONE_KEY, "")
        if zone not in ZONES:
            raise ProviderError(f"gcp: offer {request.offer_id} names no known zone")
        pinned = request.provider_data.get(ZONE_PINNED_KEY) == "true"
        zones = [zone] if pinned else [zone, *(z for z in zones_of(ZONES[zone]) if z != zone)]
        machine_type = request.provider_data.get(MACHINE_TYPE_KEY, "")
        spot = request.provider_data.get(SPOT_KEY) == "true"
        exhausted: ZoneExhausted | None = None
        for candidate in zones:
            key = (candidate, machine_type, spot)
            if self._stockouts.get(key, 0.0) > time.monotonic():
                exhausted = ZoneExhausted(
                    f"gcp: {candidate} was just out of {machine_type}", zone=candidate
                )
                continue
            try:
                return await self._insert(request, name, candidate)
            except ZoneExhausted as exc:
                log.info("gcp: %s; trying the next zone", exc)
                self._stockouts[key] = time.monotonic() + STOCKOUT_MEMORY_SECONDS
                exhausted = exc
        assert exhausted is not None
        raise exhausted

    async def _insert(self, request: CreateRequest, name: str, zone: str) -> ProviderInstance:
        resource = instance_resource(
            request,
            name=name,
            zone=zone,
            labels=instance_labels(request.label, self._installation),
            ssh_user=self._ssh_user,
        )
        what = f"create {name} in {zone}"
        try:
            operation = await self._compute.call(
                self._compute.instances.insert_unary,
                what,
                request=compute_v1.InsertInstanceRequest(
                    project=self._compute.project,
                    zone=zone,
                    instance_resource=resource,
                    request_id=insert_request_id(
                        name, zone, self._failed_inserts.get((name, zone), 0)
                    ),
                ),
            )
        except AlreadyExists:
            # Made by an earlier try whose answer was lost, past GCE's requestId memory.
            log.info("gcp: %s exists already; adopting it", name)
        else:
            try:
                await self._compute.wait(operation, what, zone=zone)
            except ProviderError:
                # A new id next time; should this one still have made the VM, the name makes
                # the next insert a 409, and that is adopted.
                key = (name, zone)
                self._failed_inserts[key] = self._failed_inserts.get(key, 0) + 1
                raise
        instance = await self._get(zone, name)
        if instance is None:
            raise ProviderError(f"gcp: {name} vanished right after {what}")
        if instance.label != request.label:
            raise ProviderError(f"gcp: {zone}/{name} exists and is not this machine's")
        return instance

    async def _live_with_label(self, label: str) -> ProviderInstance | None:
        for instance in await self.find_by_exact_label(label):
            if instance.status is not InstanceStatus.GONE:
                return instance
        return None

    # --- reads ----------------------------------------------------------------------------

    async def get_instance(self, instance_id: str) -> ProviderInstance | None:
        zone, name = split_instance_id(instance_id)
        return await self._get(zone, name)

    async def _get(self, zone: str, name: str) -> ProviderInstance | None:
        try:
            raw = await self._compute.call(
                self._compute.instances.get,
                f"get {zone}/{name}",
                project=self._compute.project,
                zone=zone,
                instance=name,
            )
        except InstanceNotFound:
            return None
        reason = await self._stop_reason(raw) if raw.status == "TERMINATED" else None
        return self._parse(raw, reason)

    def _parse(
        self, raw: compute_v1.Instance, reason: StopReason | None = None
    ) -> ProviderInstance:
        return parse_instance(
            raw,
            installation=self._installation,
            ssh_user=self._ssh_user,
            ssh_port=self._ssh_port,
            stop_reason=reason,
        )

    async def _stop_reason(self, raw: compute_v1.Instance) -> StopReason:
        """Why a TERMINATED VM is down, from its zone's operations on it (GCE keeps them for a
        while; none left reads as a plain stop)."""
        zone = raw.zone.rstrip("/").rsplit("/", 1)[-1]
        operations = await self._compute.call(
            zone_operations,
            f"operations on {raw.name}",
            client=self._compute.zone_operations,
            request=compute_v1.ListZoneOperationsRequest(
                project=self._compute.project, zone=zone, filter=f"targetId={raw.id}"
            ),
        )
        return stop_reason(operations)

    async def find_by_label(self, label_prefix: str) -> list[ProviderInstance]:
        return [
            instance
            for instance in await self._list(label_filter(self._installation))
            if instance.label is not None and instance.label.startswith(label_prefix.lower())
        ]

    async def find_by_exact_label(self, label: str) -> list[ProviderInstance]:
        return await self._list(label_filter(self._installation, label))

    async def _list(self, filter_: str) -> list[ProviderInstance]:
        """This installation's instances in every zone: one aggregated, paged listing."""
        raws = await self._compute.call(
            aggregated_instances,
            "list instances",
            client=self._compute.instances,
            request=compute_v1.AggregatedListInstancesRequest(
                project=self._compute.project, filter=filter_, max_results=500
            ),
        )
        return [self._parse(raw) for raw in raws]

    # --- lifecycle ------------------------------------------------------------------------

    async def _act(self, method_name: str, instance_id: str, verb: str) -> None:
        zone, name = split_instance_id(instance_id)
        requests_by_verb = {
            "stop": compute_v1.StopInstanceRequest,
            "start": compute_v1.StartInstanceRequest,
            "delete": compute_v1.DeleteInstanceRequest,
        }
        request = requests_by_verb[verb](
            project=self._compute.project, zone=zone, instance=name, request_id=new_request_id()
        )
        what = f"{verb} {instance_id}"
        operation = await self._compute.call(
            getattr(self._compute.instances, method_name), what, request=request
        )
        await self._compute.wait(operation, what, zone=zone)

    async def stop_instance(self, instance_id: str) -> None:
        await self._act("stop_unary", instance_id, "stop")

    async def start_instance(self, instance_id: str) -> None:
        """Start, and return once it is RUNNING. A zone out of capacity is tried again a few
        times (stockouts are often brief), then left: the VM reads `waiting_for_host` (its
        disk stays in the zone), which is what sends a resume to a new zone."""
        for delay in (*self.START_RETRY_SECONDS, None):
            try:
                await self._act("start_unary", instance_id, "start")
                return
            except ZoneExhausted as exc:
                if delay is None:
                    log.info("gcp: %s; leaving it stopped", exc)
                    return
                await asyncio.sleep(delay)

    async def destroy_instance(self, instance_id: str) -> None:
        """Delete, boot disk included; an instance that is already gone counts as deleted."""
        try:
            await self._act("delete_unary", instance_id, "delete")
        except InstanceNotFound:
            log.debug("gcp instance %s already gone", instance_id)

    # --- SSH keys -------------------------------------------------------------------------

    async def attach_ssh_key(self, instance_id: str, public_key: str) -> None:
        """Add the key for the SSH user to the instance's `ssh-keys` metadata; the guest picks
        it up while running. Metadata is read-modify-written under its fingerprint, read again
        when someone changed it meanwhile (412)."""
        zone, name = split_instance_id(instance_id)
        wanted = key_identity(public_key)
        for attempt in range(METADATA_ATTEMPTS):
            raw = await self._compute.call(
                self._compute.instances.get,
                f"get {instance_id}",
                project=self._compute.project,
                zone=zone,
                instance=name,
            )
            items = {item.key: item.value for item in raw.metadata.items}
            lines = [line for line in items.get(SSH_KEYS, "").splitlines() if line.strip()]
            if wanted in {key_identity(line) for line in lines}:
                return
            lines.append(f"{self._ssh_user}:{' '.join(public_key.split()[:3])}")
            items[SSH_KEYS] = "\n".join(lines)
            metadata = compute_v1.Metadata(
                fingerprint=raw.metadata.fingerprint,
                items=[compute_v1.Items(key=k, value=v) for k, v in items.items()],
            )
            what = f"add an ssh key to {instance_id}"
            try:
                operation = await self._compute.call(
                    self._compute.instances.set_metadata_unary,
                    what,
                    request=compute_v1.SetMetadataInstanceRequest(
                        project=self._compute.project,
                        zone=zone,
                        instance=name,
                        metadata_resource=metadata,
                        request_id=new_request_id(),
                    ),
                )
            except FingerprintStale:
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            await self._compute.wait(operation, what, zone=zone)
            return
        raise ProviderError(f"gcp: metadata of {instance_id} kept changing under us")

    async def preemptions(self, since: datetime | None = None) -> list[str]:
        """Instance ids GCE preempted (every zone, one aggregated listing), optionally only
        those since `since` (timezone-aware)."""
        operations = await self._compute.call(
            aggregated_operations,
            "list preemptions",
            client=self._compute.global_operations,
            request=compute_v1.AggregatedListGlobalOperationsRequest(
                project=self._compute.project, filter=f'operationType="{PREEMPTED}"'
            ),
        )
        found: list[str] = []
        for op in operations:
            when = parse_timestamp(op.insert_time)
            if since is not None and when is not None and when < since:
                continue
            parts = op.target_link.rstrip("/").split("/")
            if len(parts) >= 4 and parts[-2] == "instances":
                found.append(f"{parts[-3]}/{parts[-1]}")
        return found
