"""Shared pieces of the GCE sim tests: the official clients pointed at the sim, an insert that
waits, SSH keys in GCE's metadata form."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncssh
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from tests.fixtures.sim import SimHandle

ZONE = "us-central1-a"
T = TypeVar("T")


@dataclass
class Gce:
    """The official clients, as production code builds them, against one sim."""

    sim: SimHandle
    project: str
    instances: compute_v1.InstancesClient
    operations: compute_v1.ZoneOperationsClient
    global_operations: compute_v1.GlobalOperationsClient
    machine_types: compute_v1.MachineTypesClient
    zones: compute_v1.ZonesClient


def clients(sim: SimHandle, project: str | None = None) -> Gce:
    opts = {"api_endpoint": sim.gce_url}
    kwargs: dict[str, Any] = {
        "client_options": opts,
        "credentials": AnonymousCredentials(),
        "transport": "rest",
    }
    instances = compute_v1.InstancesClient(**kwargs)
    operations = compute_v1.ZoneOperationsClient(**kwargs)
    # ExtendedOperation.result() would poll compute.googleapis.com (reference §1.2, option C).
    instances._transport._extended_operations_services["zone_operations"] = operations
    return Gce(
        sim,
        project or f"proj-{uuid.uuid4().hex[:8]}",
        instances,
        operations,
        compute_v1.GlobalOperationsClient(**kwargs),
        compute_v1.MachineTypesClient(**kwargs),
        compute_v1.ZonesClient(**kwargs),
    )


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The client is synchronous: run it off the event loop the sim fixture lives on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def ssh_keys(**users: asyncssh.SSHKey) -> str:
    """The `ssh-keys` metadata value: one `user:ssh-ed25519 AAAA... comment` line each."""
    return "\n".join(
        f"{user}:{key.export_public_key().decode().strip()} {user}@laptop"
        for user, key in users.items()
    )


def instance(
    name: str,
    *,
    zone: str = ZONE,
    machine_type: str = "e2-medium",
    spot: bool = False,
    action: str = "STOP",
    labels: dict[str, str] | None = None,
    keys: str | None = None,
) -> compute_v1.Instance:
    """An insert body shaped like the team's (reference §2.2)."""
    scheduling = (
        compute_v1.Scheduling(
            provisioning_model="SPOT",
            instance_termination_action=action,
            automatic_restart=False,
            on_host_maintenance="TERMINATE",
        )
        if spot
        else compute_v1.Scheduling()
    )
    items = [compute_v1.Items(key="ssh-keys", value=keys)] if keys else []
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{machine_type}",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                type_="PERSISTENT",
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image="projects/debian-cloud/global/images/family/debian-12",
                    disk_size_gb=20,
                    disk_type=f"zones/{zone}/diskTypes/pd-standard",
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
        metadata=compute_v1.Metadata(items=items),
        labels=labels or {},
        scheduling=scheduling,
    )


def wait(gce: Gce, op: compute_v1.Operation, zone: str = ZONE) -> compute_v1.Operation:
    """Poll with zoneOperations.wait until DONE (reference §1.2 option B)."""
    while op.status != compute_v1.Operation.Status.DONE:
        op = gce.operations.wait(project=gce.project, zone=zone, operation=op.name)
    return op


def create(gce: Gce, name: str, zone: str = ZONE, **kwargs: Any) -> compute_v1.Instance:
    """Insert, wait for the operation, return the instance (RUNNING)."""
    op = gce.instances.insert_unary(
        project=gce.project, zone=zone, instance_resource=instance(name, zone=zone, **kwargs)
    )
    done = wait(gce, op, zone)
    assert not done.error.errors, done.error
    return gce.instances.get(project=gce.project, zone=zone, instance=name)


def nat_ip(vm: compute_v1.Instance) -> str:
    return vm.network_interfaces[0].access_configs[0].nat_i_p
