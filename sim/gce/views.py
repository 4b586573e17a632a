"""Instances and operations as GCE shows them on the wire (reference §3.1, §3.2)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from sim.gce.catalogue import BASE, region_of
from sim.gce.store import InstanceRecord, OperationRecord

# GCE writes its timestamps in Pacific time; the offset is part of the format clients see.
_PACIFIC = timezone(timedelta(hours=-7))
# The fingerprint GCE gives an empty map (labels, tags, metadata without items).
EMPTY_FINGERPRINT = "42WmSpB8rSM="


def timestamp(epoch: float | None) -> str | None:
    """RFC3339 with milliseconds and an offset, e.g. 2024-08-25T22:38:25.897-07:00."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, _PACIFIC)
    return moment.isoformat(timespec="milliseconds")


def fingerprint(content: Any) -> str:
    """A content hash: the same labels or metadata always give the same fingerprint."""
    if not content:
        return EMPTY_FINGERPRINT
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def zone_url(project: str, zone: str) -> str:
    return f"{BASE}/projects/{project}/zones/{zone}"


def instance_url(record: InstanceRecord) -> str:
    return f"{zone_url(record.project, record.zone)}/instances/{record.name}"


def _drop_none(view: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in view.items() if value is not None}


def instance_json(record: InstanceRecord) -> dict[str, Any]:
    project, zone = record.project, record.zone
    zone_link = zone_url(project, zone)
    access: dict[str, Any] = {
        "kind": "compute#accessConfig",
        "type": "ONE_TO_ONE_NAT",
        "name": "External NAT",
        "networkTier": "PREMIUM",
    }
    # An ephemeral external address exists only while the VM holds one (not TERMINATED).
    if record.address is not None:
        access["natIP"] = record.address
    nic: dict[str, Any] = {
        "kind": "compute#networkInterface",
        "name": "nic0",
        "network": f"{BASE}/projects/{project}/global/networks/default",
        "subnetwork": f"{BASE}/projects/{project}/regions/{region_of(zone)}/subnetworks/default",
        "networkIP": record.network_ip,
        "stackType": "IPV4_ONLY",
        "fingerprint": fingerprint({"nic": record.network_ip}),
    }
    if record.external:
        nic["accessConfigs"] = [access]
    disk_name = record.name
    view = {
        "kind": "compute#instance",
        "id": str(record.id),
        "creationTimestamp": timestamp(record.created_at),
        "name": record.name,
        "description": record.description,
        "tags": {"items": record.tags, "fingerprint": fingerprint(record.tags)}
        if record.tags
        else {"fingerprint": EMPTY_FINGERPRINT},
        "machineType": f"{zone_link}/machineTypes/{record.machine_type}",
        "status": record.status,
        "statusMessage": record.status_message,
        "zone": zone_link,
        "canIpForward": False,
        "networkInterfaces": [nic],
        "disks": [
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": "READ_WRITE",
                "source": f"{zone_link}/disks/{disk_name}",
                "deviceName": disk_name,
                "index": 0,
                "boot": True,
                "autoDelete": True,
                "interface": "SCSI",
                "diskSizeGb": str(record.disk_size_gb),
                "architecture": "X86_64",
            }
        ],
        "metadata": _drop_none(
            {
                "kind": "compute#metadata",
                "fingerprint": record.metadata_fingerprint or EMPTY_FINGERPRINT,
                "items": record.metadata or None,
            }
        ),
        "selfLink": f"{zone_link}/instances/{record.name}",
        "selfLinkWithId": f"{zone_link}/instances/{record.id}",
        "scheduling": record.scheduling,
        "cpuPlatform": "Intel Broadwell" if record.status == "RUNNING" else "Unknown CPU Platform",
        "labels": record.labels or None,
        "labelFingerprint": fingerprint(record.labels),
        "startRestricted": False,
        "deletionProtection": False,
        "fingerprint": fingerprint({"id": record.id, "status": record.status}),
        "lastStartTimestamp": timestamp(record.last_start_at),
        "lastStopTimestamp": timestamp(record.last_stop_at),
    }
    return _drop_none(view)


def operation_json(op: OperationRecord) -> dict[str, Any]:
    zone_link = zone_url(op.project, op.zone)
    return _drop_none(
        {
            "kind": "compute#operation",
            "id": str(op.id),
            "name": op.name,
            "zone": zone_link,
            "operationType": op.operation_type,
            "targetLink": op.target_link,
            "targetId": str(op.target_id),
            "status": op.status,
            "statusMessage": op.status_message,
            "user": op.user,
            "progress": op.progress,
            "insertTime": timestamp(op.inserted_at),
            "startTime": timestamp(op.started_at),
            "endTime": timestamp(op.ended_at),
            "selfLink": f"{zone_link}/operations/{op.name}",
            "clientOperationId": op.request_id,
            "error": op.error,
            "httpErrorStatusCode": op.http_error_status_code,
            "httpErrorMessage": op.http_error_message,
        }
    )
