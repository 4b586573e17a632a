"""Compute Engine resources in and out: the instance Dumont inserts for a create, and what an
instance read says in the provider-neutral `ProviderInstance`."""

from __future__ import annotations

from google.cloud import compute_v1

from core.contracts.states import InstanceStatus
from providers.base import CreateRequest, InvalidRequest, ProviderInstance
from providers.gcp.catalogue import (
    DISK_TYPE,
    MACHINE_TYPES,
    ZONES,
    disk_price_per_hour,
    price_per_hour,
    region_of_zone,
)
from providers.gcp.naming import DUMONT_LABEL, INSTALLATION_LABEL, join_instance_id
from providers.gcp.offers import MACHINE_TYPE_KEY, SPOT_KEY, ZONE_KEY
from providers.gcp.stopped import StopCause, StopReason

SSH_KEYS = "ssh-keys"
STARTUP_SCRIPT = "startup-script"
# Stock images have no /workspace; the SSH user (made by the guest agent from `ssh-keys`)
# must be able to write it.
WORKSPACE_SCRIPT = "#!/bin/sh\nmkdir -p /workspace && chmod 1777 /workspace\n"
IMAGES = {
    "debian-12": "projects/debian-cloud/global/images/family/debian-12",
    "ubuntu-2204-lts": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts",
    "ubuntu-2404-lts": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64",
}
DEFAULT_IMAGE = "debian-12"

_STATUS = {
    "PROVISIONING": InstanceStatus.PROVISIONING,
    "STAGING": InstanceStatus.PROVISIONING,
    "RUNNING": InstanceStatus.RUNNING,
    # A stopped VM reports TERMINATED; on its way there it is neither up nor down yet.
    "PENDING_STOP": InstanceStatus.UNKNOWN,
    "STOPPING": InstanceStatus.UNKNOWN,
    "SUSPENDING": InstanceStatus.UNKNOWN,
    "SUSPENDED": InstanceStatus.STOPPED,
    "STOPPED": InstanceStatus.STOPPED,
    "TERMINATED": InstanceStatus.STOPPED,
    "REPAIRING": InstanceStatus.UNKNOWN,
    "DEPROVISIONING": InstanceStatus.UNKNOWN,
}


def source_image(image: str) -> str:
    """A GCE boot image for `image`: an alias (`debian-12`) or an image path; a container
    image (what vast.ai runs) is refused, since a VM boots a disk image."""
    if image in IMAGES:
        return IMAGES[image]
    if image.startswith(("projects/", "https://www.googleapis.com/compute/v1/projects/")):
        return image
    aliases = ", ".join(IMAGES)
    raise InvalidRequest(
        f"GCP boots VM images, not container images: use one of {aliases}"
        f" or projects/<project>/global/images/<image>, not {image!r}"
    )


def ssh_keys_value(user: str, public_keys: list[str]) -> str:
    """The `ssh-keys` metadata value: one `user:key` line per key, as the guest agent reads."""
    lines = [f"{user}:{' '.join(key.split()[:3])}" for key in dict.fromkeys(public_keys)]
    return "\n".join(lines)


def key_identity(line_or_key: str) -> str:
    """`user:ssh-ed25519 AAAA… comment` or `ssh-ed25519 AAAA…` -> `ssh-ed25519 AAAA…`."""
    key = line_or_key.split(":", 1)[1] if ":" in line_or_key.split()[0] else line_or_key
    return " ".join(key.split()[:2])


def instance_resource(
    request: CreateRequest, *, name: str, zone: str, labels: dict[str, str], ssh_user: str
) -> compute_v1.Instance:
    machine_type = request.provider_data.get(MACHINE_TYPE_KEY, "")
    if machine_type not in MACHINE_TYPES:
        raise InvalidRequest(f"unknown GCP machine type {machine_type!r}")
    spot = request.provider_data.get(SPOT_KEY) == "true"
    scheduling = (
        compute_v1.Scheduling(
            provisioning_model="SPOT",
            instance_termination_action="STOP",
            automatic_restart=False,
            on_host_maintenance="TERMINATE",
        )
        if spot
        else compute_v1.Scheduling(provisioning_model="STANDARD")
    )
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{machine_type}",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                type_="PERSISTENT",
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=source_image(request.image),
                    disk_size_gb=request.disk_gb,
                    disk_type=f"zones/{zone}/diskTypes/{DISK_TYPE}",
                ),
            )
        ],
        network_interfaces=[
            compute_v1.NetworkInterface(
                network="global/networks/default",
                access_configs=[
                    compute_v1.AccessConfig(
                        name="External NAT", type_="ONE_TO_ONE_NAT", network_tier="PREMIUM"
                    )
                ],
            )
        ],
        metadata=compute_v1.Metadata(
            items=[
                compute_v1.Items(key=SSH_KEYS, value=ssh_keys_value(ssh_user, request.ssh_keys)),
                compute_v1.Items(key=STARTUP_SCRIPT, value=WORKSPACE_SCRIPT),
            ]
        ),
        labels=labels,
        scheduling=scheduling,
    )


def _last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def nat_ip(instance: compute_v1.Instance) -> str | None:
    for interface in instance.network_interfaces:
        for access in interface.access_configs:
            if access.nat_i_p:
                return str(access.nat_i_p)
    return None


def boot_disk_gb(instance: compute_v1.Instance) -> int:
    return next((int(d.disk_size_gb) for d in instance.disks if d.boot), 0)


def is_spot(instance: compute_v1.Instance) -> bool:
    return instance.scheduling.provisioning_model == "SPOT" or bool(instance.scheduling.preemptible)


def dumont_label(instance: compute_v1.Instance, installation: str) -> str | None:
    """The instance's Dumont label when it belongs to this installation, else None."""
    labels = dict(instance.labels)
    if labels.get(INSTALLATION_LABEL) != installation:
        return None
    return labels.get(DUMONT_LABEL)


def parse_instance(
    instance: compute_v1.Instance,
    *,
    installation: str,
    ssh_user: str,
    ssh_port: int,
    stop_reason: StopReason | None = None,
) -> ProviderInstance:
    zone = _last_segment(instance.zone)
    machine_type = _last_segment(instance.machine_type)
    spot = is_spot(instance)
    disk_gb = boot_disk_gb(instance)
    host = nat_ip(instance) if instance.status == "RUNNING" else None
    region = region_of_zone(zone) if zone in ZONES else None
    status = _STATUS.get(instance.status, InstanceStatus.UNKNOWN)
    message = instance.status_message or None
    cause = stop_reason.cause if stop_reason and status is InstanceStatus.STOPPED else None
    if cause is StopCause.NO_CAPACITY:
        # As vast's "Scheduling": asked to start, still down; a resume moves to a new zone.
        status = InstanceStatus.WAITING_FOR_HOST
    if cause is not None and stop_reason is not None and stop_reason.message:
        message = stop_reason.message
    return ProviderInstance(
        instance_id=join_instance_id(zone, instance.name),
        label=dumont_label(instance, installation),
        status=status,
        raw_status=instance.status or None,
        gpu_name="",
        num_gpus=0,
        price_per_hour=price_per_hour(machine_type, zone, spot=spot, disk_gb=disk_gb) or 0.0,
        geolocation=f"{region.city}, {region.country}" if region else zone,
        ssh_host=host,
        ssh_port=ssh_port if host else None,
        ssh_user=ssh_user,
        status_msg=message,
        provider_data={
            ZONE_KEY: zone,
            MACHINE_TYPE_KEY: machine_type,
            SPOT_KEY: "true" if spot else "false",
        },
        disk_price_per_hour=disk_price_per_hour(disk_gb),
        interrupted=cause is StopCause.PREEMPTED,
        installation_marked=dict(instance.labels).get(INSTALLATION_LABEL) == installation,
    )
