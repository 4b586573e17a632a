"""The instance calls through the official google-cloud-compute client, against a real sim."""

from __future__ import annotations

import os
import re
import uuid

import httpx
import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from tests.fixtures.sim import SimHandle
from tests.sim.gce.helpers import ZONE, call, clients, create, instance, nat_ip, wait

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
OP_NAME = re.compile(r"^operation-\d{13}-[0-9a-f]{13}-[0-9a-f]{8}-[0-9a-f]{8}$")
BASE = "https://www.googleapis.com/compute/v1"


async def test_insert_wait_get_running_with_nat_ip(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    op = await call(
        gce.instances.insert_unary,
        project=gce.project,
        zone=ZONE,
        instance_resource=instance("vm-a", labels={"dumont-owner": "u1"}),
    )
    assert OP_NAME.match(op.name) and op.operation_type == "insert"
    assert op.status in (compute_v1.Operation.Status.PENDING, compute_v1.Operation.Status.RUNNING)
    early = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-a")
    assert early.status in ("PROVISIONING", "STAGING")
    done = await call(wait, gce, op)
    assert done.status == compute_v1.Operation.Status.DONE and done.progress == 100
    vm = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-a")
    assert vm.status == "RUNNING"
    assert nat_ip(vm).startswith("127.") and vm.network_interfaces[0].network_i_p.startswith("10.")
    assert done.target_id == vm.id and done.target_link == vm.self_link
    assert vm.labels["dumont-owner"] == "u1"


async def test_instance_json_is_gce_shaped(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    await call(create, gce, "vm-shape", spot=True)
    path = f"/compute/v1/projects/{gce.project}/zones/{ZONE}/instances/vm-shape"
    async with httpx.AsyncClient(base_url=gce_sim.gce_url) as client:
        body = (await client.get(path)).json()
    assert body["kind"] == "compute#instance"
    assert isinstance(body["id"], str) and len(body["id"]) == 19
    assert body["selfLink"] == f"{BASE}/projects/{gce.project}/zones/{ZONE}/instances/vm-shape"
    assert body["zone"] == f"{BASE}/projects/{gce.project}/zones/{ZONE}"
    assert body["machineType"].endswith(f"/zones/{ZONE}/machineTypes/e2-medium")
    assert body["machineType"].startswith(BASE)
    assert RFC3339.match(body["creationTimestamp"]) and RFC3339.match(body["lastStartTimestamp"])
    assert body["labelFingerprint"] == "42WmSpB8rSM=" and "labels" not in body
    assert body["metadata"]["kind"] == "compute#metadata" and body["metadata"]["fingerprint"]
    assert body["disks"][0]["boot"] is True and body["disks"][0]["diskSizeGb"] == "20"
    assert body["scheduling"] == {
        "provisioningModel": "SPOT",
        "instanceTerminationAction": "STOP",
        "automaticRestart": False,
        "onHostMaintenance": "TERMINATE",
        "preemptible": True,
    }
    access = body["networkInterfaces"][0]["accessConfigs"][0]
    assert access["type"] == "ONE_TO_ONE_NAT" and access["natIP"].startswith("127.")


async def test_list_filters_and_pages(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    names = [f"vm-{index}" for index in range(5)]
    ops = [
        await call(
            gce.instances.insert_unary,
            project=gce.project,
            zone=ZONE,
            instance_resource=instance(name, labels={"role": "standby" if index % 2 else "worker"}),
        )
        for index, name in enumerate(names)
    ]
    for op in ops:
        await call(wait, gce, op)

    def listed(**request: object) -> list[str]:
        pager = gce.instances.list(request={"project": gce.project, "zone": ZONE, **request})
        return [vm.name for vm in pager]

    pages = await call(
        lambda: [
            [vm.name for vm in page.items]
            for page in gce.instances.list(
                request={"project": gce.project, "zone": ZONE, "max_results": 2}
            ).pages
        ]
    )
    assert pages == [names[0:2], names[2:4], names[4:5]]
    assert await call(listed, filter='labels.role="standby"') == ["vm-1", "vm-3"]
    assert await call(listed, filter="labels.role != standby", max_results=2) == [
        "vm-0",
        "vm-2",
        "vm-4",
    ]
    assert await call(listed, filter='name:"vm-" AND status=RUNNING labels.role:*') == names
    assert await call(listed, filter="(name = vm-0) OR (name = vm-4)") == ["vm-0", "vm-4"]
    assert await call(listed, filter="labels.missing:*") == []
    assert await call(listed, filter="name eq 'vm-[13]'") == ["vm-1", "vm-3"]
    assert await call(listed, order_by="creationTimestamp desc") == names[::-1]
    with pytest.raises(exceptions.BadRequest):
        await call(listed, filter="name = (")

    aggregated = await call(
        lambda: dict(gce.instances.aggregated_list(request={"project": gce.project}))
    )
    assert [vm.name for vm in aggregated[f"zones/{ZONE}"].instances] == names
    assert aggregated["zones/europe-west1-b"].warning.code == "NO_RESULTS_ON_PAGE"


async def test_empty_list_has_no_items(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    path = f"/compute/v1/projects/{gce.project}/zones/{ZONE}/instances"
    async with httpx.AsyncClient(base_url=gce_sim.gce_url) as client:
        body = (await client.get(path)).json()
    assert body["kind"] == "compute#instanceList" and "items" not in body
    assert list(await call(gce.instances.list, project=gce.project, zone=ZONE)) == []


async def test_stop_start_delete(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    vm = await call(create, gce, "vm-cycle")
    first_ip = nat_ip(vm)
    op = await call(gce.instances.stop, project=gce.project, zone=ZONE, instance="vm-cycle")
    stopping = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-cycle")
    assert stopping.status in ("STOPPING", "TERMINATED")
    await call(op.result, timeout=30)
    stopped = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-cycle")
    assert stopped.status == "TERMINATED" and stopped.last_stop_timestamp
    assert not stopped.network_interfaces[0].access_configs[0].nat_i_p

    op = await call(gce.instances.start, project=gce.project, zone=ZONE, instance="vm-cycle")
    starting = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-cycle")
    assert starting.status in ("PROVISIONING", "STAGING")
    await call(op.result, timeout=30)
    running = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-cycle")
    assert running.status == "RUNNING" and nat_ip(running).startswith("127.")
    assert first_ip  # a new natIP is allowed, as with GCE's ephemeral addresses

    machine = await gce_sim.gce_admin.instance(gce.project, ZONE, "vm-cycle")
    op = await call(gce.instances.delete, project=gce.project, zone=ZONE, instance="vm-cycle")
    assert op.operation_type == "delete"
    await call(op.result, timeout=30)
    with pytest.raises(exceptions.NotFound):
        await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-cycle")
    assert not await call(os.path.exists, machine["machine_dir"])
    with pytest.raises(exceptions.NotFound):
        await call(gce.instances.delete, project=gce.project, zone=ZONE, instance="vm-cycle")


async def test_validation_errors(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    with pytest.raises(exceptions.BadRequest) as bad_name:
        await call(
            gce.instances.insert_unary,
            project=gce.project,
            zone=ZONE,
            instance_resource=instance("Bad_Name"),
        )
    assert bad_name.value.errors[0]["reason"] == "invalid"
    with pytest.raises(exceptions.BadRequest):
        await call(
            gce.instances.insert_unary,
            project=gce.project,
            zone=ZONE,
            instance_resource=instance("vm-x", machine_type="n9-huge"),
        )
    with pytest.raises(exceptions.NotFound):
        await call(
            gce.instances.insert_unary,
            project=gce.project,
            zone="mars-central1-a",
            instance_resource=instance("vm-x", zone="mars-central1-a"),
        )
    await call(create, gce, "vm-dup")
    with pytest.raises(exceptions.Conflict) as conflict:
        await call(
            gce.instances.insert_unary,
            project=gce.project,
            zone=ZONE,
            instance_resource=instance("vm-dup"),
        )
    assert conflict.value.errors[0]["reason"] == "alreadyExists"
    with pytest.raises(exceptions.NotFound):
        await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-none")


async def test_full_machine_type_url_and_int64_strings(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    body = {
        "name": "vm-raw",
        "machineType": f"{BASE}/projects/{gce.project}/zones/{ZONE}/machineTypes/e2-micro",
        "disks": [{"boot": True, "initializeParams": {"diskSizeGb": "30"}}],
    }
    path = f"/compute/v1/projects/{gce.project}/zones/{ZONE}/instances"
    async with httpx.AsyncClient(base_url=gce_sim.gce_url) as client:
        response = await client.post(path, json=body, params={"unknownParam": "x"})
        assert response.status_code == 200, response.text
        got = (await client.get(f"{path}/vm-raw")).json()
    assert got["machineType"].endswith("/e2-micro") and got["disks"][0]["diskSizeGb"] == "30"


async def test_set_labels_and_metadata_fingerprints(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    vm = await call(create, gce, "vm-fp")
    assert vm.label_fingerprint == "42WmSpB8rSM="
    request = compute_v1.InstancesSetLabelsRequest(
        labels={"dumont-role": "standby"}, label_fingerprint=vm.label_fingerprint
    )
    op = await call(
        gce.instances.set_labels,
        project=gce.project,
        zone=ZONE,
        instance="vm-fp",
        instances_set_labels_request_resource=request,
    )
    await call(op.result, timeout=10)
    vm2 = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-fp")
    assert vm2.labels == {"dumont-role": "standby"}
    assert vm2.label_fingerprint != vm.label_fingerprint
    with pytest.raises(exceptions.PreconditionFailed) as stale:
        await call(
            gce.instances.set_labels,
            project=gce.project,
            zone=ZONE,
            instance="vm-fp",
            instances_set_labels_request_resource=request,  # the old fingerprint
        )
    assert stale.value.errors[0]["reason"] == "conditionNotMet"

    metadata = compute_v1.Metadata(
        items=[compute_v1.Items(key="startup-note", value="hi")],
        fingerprint=vm2.metadata.fingerprint,
    )
    op = await call(
        gce.instances.set_metadata,
        project=gce.project,
        zone=ZONE,
        instance="vm-fp",
        metadata_resource=metadata,
    )
    await call(op.result, timeout=10)
    vm3 = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-fp")
    assert [(i.key, i.value) for i in vm3.metadata.items] == [("startup-note", "hi")]
    assert vm3.metadata.fingerprint != vm2.metadata.fingerprint
    with pytest.raises(exceptions.PreconditionFailed):
        await call(
            gce.instances.set_metadata,
            project=gce.project,
            zone=ZONE,
            instance="vm-fp",
            metadata_resource=metadata,
        )


async def test_request_id_replay_returns_the_same_operation(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    request_id = str(uuid.uuid4())

    def insert() -> compute_v1.Operation:
        return gce.instances.insert_unary(
            request=compute_v1.InsertInstanceRequest(
                project=gce.project,
                zone=ZONE,
                instance_resource=instance("vm-idem"),
                request_id=request_id,
            )
        )

    first = await call(insert)
    second = await call(insert)  # no 409: the same operation back
    assert first.name == second.name and first.client_operation_id == request_id
    await call(wait, gce, first)
    assert (await call(insert)).name == first.name
    listed = list(await call(gce.instances.list, project=gce.project, zone=ZONE))
    assert [vm.name for vm in listed] == ["vm-idem"]

    delete_id = str(uuid.uuid4())

    def delete() -> compute_v1.Operation:
        return gce.instances.delete_unary(
            request={
                "project": gce.project,
                "zone": ZONE,
                "instance": "vm-idem",
                "request_id": delete_id,
            }
        )

    deleting = await call(delete)
    await call(wait, gce, deleting)
    assert (await call(delete)).name == deleting.name  # not a 404: the completed delete
    ops = await call(
        lambda: list(
            gce.operations.list(
                request={"project": gce.project, "zone": ZONE, "filter": "operationType=insert"}
            )
        )
    )
    assert [op.name for op in ops] == [first.name]


async def test_operations_list_and_aggregated(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    vm = await call(create, gce, "vm-ops")
    ops = await call(
        lambda: list(
            gce.operations.list(
                request={
                    "project": gce.project,
                    "zone": ZONE,
                    "filter": f'targetLink:"instances/vm-ops" AND targetId={vm.id} status=DONE',
                }
            )
        )
    )
    assert [op.operation_type for op in ops] == ["insert"]
    got = await call(gce.operations.get, project=gce.project, zone=ZONE, operation=ops[0].name)
    assert got.name == ops[0].name and got.user and got.insert_time and got.end_time
    aggregated = await call(
        lambda: dict(gce.global_operations.aggregated_list(request={"project": gce.project}))
    )
    assert [op.name for op in aggregated[f"zones/{ZONE}"].operations] == [ops[0].name]
    with pytest.raises(exceptions.NotFound):
        await call(gce.operations.get, project=gce.project, zone=ZONE, operation="operation-1")


async def test_catalogue(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    zones = [z.name for z in await call(lambda: list(gce.zones.list(project=gce.project)))]
    assert {"us-central1-f", "europe-west1-d", "southamerica-east1-c"} <= set(zones)
    zone = await call(gce.zones.get, project=gce.project, zone="europe-west1-c")
    assert zone.status == "UP" and zone.region.endswith("/regions/europe-west1")
    micro = await call(
        gce.machine_types.get, project=gce.project, zone=ZONE, machine_type="e2-micro"
    )
    assert (micro.guest_cpus, micro.memory_mb, micro.is_shared_cpu) == (2, 1024, True)
    types = await call(lambda: list(gce.machine_types.list(project=gce.project, zone=ZONE)))
    assert {t.name for t in types} == {
        "e2-micro",
        "e2-small",
        "e2-medium",
        "e2-standard-2",
        "e2-standard-4",
    }
    with pytest.raises(exceptions.NotFound):
        await call(gce.machine_types.get, project=gce.project, zone=ZONE, machine_type="n1-x")
    await call(create, gce, "vm-price", zone="southamerica-east1-a", spot=True)
    view = await gce_sim.gce_admin.instance(gce.project, "southamerica-east1-a", "vm-price")
    assert view["price_per_hour"] == pytest.approx(0.00950, abs=1e-5)
