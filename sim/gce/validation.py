"""Checks on request bodies, and the instance record an insert body describes."""

from __future__ import annotations

import random
import re
import time
from typing import Any

from sim.gce.catalogue import MACHINE_TYPES, ZONES
from sim.gce.errors import invalid, not_found, resource
from sim.gce.operations import new_id
from sim.gce.store import InstanceRecord

NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_MACHINE_TYPE = re.compile(r"(?:^|/)zones/(?P<zone>[^/]+)/machineTypes/(?P<name>[^/]+)$")


def check_zone(project: str, zone: str) -> None:
    if zone not in ZONES:
        raise not_found(resource(project, "zones", zone))


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise invalid(
            f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
            "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
        )
    return name


def machine_type_name(project: str, zone: str, value: Any) -> str:
    """The bare name of a machine type given as a name, a partial or a full URL."""
    if not isinstance(value, str) or not value:
        raise invalid("Invalid value for field 'resource.machineType': ''. Required.")
    match = _MACHINE_TYPE.search(value)
    name = match.group("name") if match else value
    if (match and match.group("zone") != zone) or name not in MACHINE_TYPES:
        raise invalid(
            f"Invalid value for field 'resource.machineType': '{value}'. "
            f"Machine type with name '{name}' does not exist in zone '{zone}'."
        )
    return name


def check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict) or len(labels) > 64:
        raise invalid("Invalid value for field 'labels'.")
    for key, value in labels.items():
        if not LABEL_KEY.match(str(key)) or not LABEL_VALUE.match(str(value)):
            raise invalid(f"Invalid value for field 'labels': key '{key}', value '{value}'.")
    return {str(key): str(value) for key, value in labels.items()}


def metadata_items(metadata: Any) -> list[dict[str, str]]:
    if metadata is None:
        return []
    items = metadata.get("items") or [] if isinstance(metadata, dict) else None
    if not isinstance(items, list):
        raise invalid("Invalid value for field 'metadata'.")
    seen: set[str] = set()
    result = []
    for item in items:
        key = item.get("key") if isinstance(item, dict) else None
        if not isinstance(key, str) or not key or key in seen:
            raise invalid(f"Invalid value for field 'metadata.items': duplicate or empty '{key}'.")
        seen.add(key)
        result.append({"key": key, "value": str(item.get("value") or "")})
    return result


def scheduling(body: Any) -> dict[str, Any]:
    """What GCE echoes: Spot forces automaticRestart false, TERMINATE, preemptible true."""
    given = body if isinstance(body, dict) else {}
    model = given.get("provisioningModel") or ("SPOT" if given.get("preemptible") else "STANDARD")
    if model not in ("STANDARD", "SPOT"):
        field = "resource.scheduling.provisioningModel"
        raise invalid(f"Invalid value for field '{field}': '{model}'.")
    if model == "SPOT":
        action = given.get("instanceTerminationAction") or "STOP"
        if action not in ("STOP", "DELETE"):
            raise invalid(
                "Invalid value for field 'resource.scheduling.instanceTerminationAction': "
                f"'{action}'."
            )
        return {
            "provisioningModel": "SPOT",
            "instanceTerminationAction": action,
            "automaticRestart": False,
            "onHostMaintenance": "TERMINATE",
            "preemptible": True,
        }
    return {
        "provisioningModel": "STANDARD",
        "automaticRestart": bool(given.get("automaticRestart", True)),
        "onHostMaintenance": given.get("onHostMaintenance") or "MIGRATE",
        "preemptible": False,
    }


def _boot_disk(body: dict[str, Any]) -> tuple[int, str, str]:
    disks = body.get("disks") or []
    boot = next((d for d in disks if isinstance(d, dict) and d.get("boot")), None)
    params = (boot or {}).get("initializeParams") or {}
    try:
        size = int(params.get("diskSizeGb") or 10)
    except (TypeError, ValueError) as exc:
        raise invalid("Invalid value for field 'resource.disks[0].initializeParams'.") from exc
    if not 10 <= size <= 65536:
        raise invalid(f"Invalid value for field 'diskSizeGb': '{size}'. Must be 10..65536.")
    disk_type = str(params.get("diskType") or "pd-standard").rsplit("/", 1)[-1]
    return size, disk_type, str(params.get("sourceImage") or "")


def _external(body: dict[str, Any]) -> bool:
    nics = body.get("networkInterfaces")
    if not nics:
        return True  # the sim's default NIC keeps an external address, so SSH works
    first = nics[0] if isinstance(nics[0], dict) else {}
    return bool(first.get("accessConfigs"))


def _internal_ip() -> str:
    # GCE's default subnets are in 10.128.0.0/9; the address is shown, never reachable.
    return f"10.{random.randint(128, 191)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def new_instance(project: str, zone: str, body: Any) -> InstanceRecord:
    if not isinstance(body, dict):
        raise invalid("Invalid value for field 'resource'.")
    size, disk_type, image = _boot_disk(body)
    return InstanceRecord(
        id=new_id(),
        project=project,
        zone=zone,
        name=check_name(body.get("name")),
        machine_type=machine_type_name(project, zone, body.get("machineType")),
        created_at=time.time(),
        labels=check_labels(body.get("labels")),
        metadata=metadata_items(body.get("metadata")),
        scheduling=scheduling(body.get("scheduling")),
        disk_size_gb=size,
        disk_type=disk_type,
        source_image=image,
        description=str(body.get("description") or ""),
        tags=list((body.get("tags") or {}).get("items") or []),
        network_ip=_internal_ip(),
        external=_external(body),
    )
