"""Faults armed through the sim's admin API, as the official client sees them."""

from __future__ import annotations

from typing import Any

import asyncssh
import httpx
import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from tests.fixtures.sim import SimHandle
from tests.sim.gce.helpers import (
    ZONE,
    Gce,
    call,
    clients,
    create,
    instance,
    nat_ip,
    new_key,
    ssh_keys,
    wait,
)
from tests.sim.helpers import alive

PREEMPTED = 'operationType="compute.instances.preempted"'


def _insert(gce: Gce, name: str, zone: str = ZONE, **kwargs: Any) -> compute_v1.Operation:
    return gce.instances.insert_unary(
        project=gce.project, zone=zone, instance_resource=instance(name, zone=zone, **kwargs)
    )


def _prefix(gce: Gce) -> str:
    return f"/compute/v1/projects/{gce.project}/"


async def test_stockout_on_insert_fails_in_the_operation(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    zone = "europe-west1-d"
    await gce_sim.gce_admin.stockout(zone, 2)
    op = await call(_insert, gce, "vm-out", zone)
    assert op.status != compute_v1.Operation.Status.DONE  # 200 + RUNNING first, as GCE
    done = await call(wait, gce, op, zone)
    assert done.http_error_status_code == 503
    assert done.http_error_message == "SERVICE UNAVAILABLE"
    error = done.error.errors[0]
    assert error.code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    assert error.error_details[0].error_info.reason == "resource_availability"
    raised = exceptions.from_http_status(
        done.http_error_status_code, done.http_error_message, errors=done.error.errors
    )
    assert isinstance(raised, exceptions.ServiceUnavailable)
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in str(raised)
    with pytest.raises(exceptions.NotFound):  # a failed insert leaves no instance
        await call(gce.instances.get, project=gce.project, zone=zone, instance="vm-out")

    # The same through ExtendedOperation.result(), the client's own future.
    future = await call(
        gce.instances.insert,
        project=gce.project,
        zone=zone,
        instance_resource=instance("vm-o2", zone=zone),
    )
    with pytest.raises(exceptions.ServiceUnavailable, match="ZONE_RESOURCE_POOL_EXHAUSTED"):
        await call(future.result, timeout=30)
    await call(create, gce, "vm-after", zone)  # the stockout is used up


async def test_stockout_on_start_until_cleared(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    zone = "us-central1-b"
    await call(create, gce, "vm-s", zone)
    stop = await call(gce.instances.stop, project=gce.project, zone=zone, instance="vm-s")
    await call(stop.result, timeout=30)
    await gce_sim.gce_admin.stockout(zone, code="ZONE_RESOURCE_POOL_EXHAUSTED")
    for _ in range(2):
        op = await call(gce.instances.start_unary, project=gce.project, zone=zone, instance="vm-s")
        done = await call(wait, gce, op, zone)
        assert done.error.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED"
        assert done.http_error_status_code == 503
        vm = await call(gce.instances.get, project=gce.project, zone=zone, instance="vm-s")
        assert vm.status == "TERMINATED"
    await gce_sim.gce_admin.clear_stockout(zone)
    future = await call(gce.instances.start, project=gce.project, zone=zone, instance="vm-s")
    await call(future.result, timeout=30)
    vm = await call(gce.instances.get, project=gce.project, zone=zone, instance="vm-s")
    assert vm.status == "RUNNING"


async def test_quota_sync_and_in_the_operation(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    zone = "southamerica-east1-b"
    await gce_sim.gce_admin.quota(mode="sync", zone=zone)
    with pytest.raises(exceptions.Forbidden) as sync:
        await call(_insert, gce, "vm-q", zone)
    assert sync.value.errors[0]["reason"] == "quotaExceeded"
    assert "Quota 'CPUS' exceeded" in str(sync.value)

    await gce_sim.gce_admin.quota(mode="operation", zone=zone)
    future = await call(
        gce.instances.insert,
        project=gce.project,
        zone=zone,
        instance_resource=instance("vm-q", zone=zone),
    )
    with pytest.raises(exceptions.Forbidden, match="QUOTA_EXCEEDED"):
        await call(future.result, timeout=30)
    with pytest.raises(exceptions.NotFound):
        await call(gce.instances.get, project=gce.project, zone=zone, instance="vm-q")


async def test_storms_map_to_the_clients_exceptions(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    admin = gce_sim.gce_admin
    listing = {"project": gce.project, "zone": ZONE}

    await admin.storm("429", path_prefix=_prefix(gce))
    with pytest.raises(exceptions.TooManyRequests) as limited:
        await call(lambda: list(gce.instances.list(request=listing)))
    assert limited.value.errors[0]["reason"] == "rateLimitExceeded"

    await admin.storm("403", path_prefix=_prefix(gce))
    with pytest.raises(exceptions.Forbidden) as forbidden:
        await call(lambda: list(gce.instances.list(request=listing)))
    assert forbidden.value.errors[0]["reason"] == "rateLimitExceeded"

    # Reads retry 503 by themselves; a mutation does not.
    await admin.storm("503", 2, method="GET", path_prefix=_prefix(gce))
    assert list(await call(lambda: list(gce.instances.list(request=listing)))) == []
    assert (await admin.status())["storms"] == []
    await admin.storm("503", method="POST", path_prefix=_prefix(gce))
    with pytest.raises(exceptions.ServiceUnavailable) as backend:
        await call(_insert, gce, "vm-storm")
    assert backend.value.errors[0]["reason"] == "backendError"
    with pytest.raises(exceptions.NotFound):
        await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-storm")


async def test_preemption_with_stop(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    key = new_key()
    vm = await call(create, gce, "vm-spot", spot=True, keys=ssh_keys(dev=key))
    async with asyncssh.connect(
        nat_ip(vm), gce_sim.gce_ssh_port, username="dev", client_keys=[key], known_hosts=None
    ) as conn:
        started = await conn.run("nohup setsid sleep 1000 >/dev/null 2>&1 & echo $!", check=True)
    pid = int(str(started.stdout))
    assert alive(pid)
    event = await gce_sim.gce_admin.preempt(gce.project, ZONE, "vm-spot")
    assert not alive(pid)  # killed at once, no grace
    assert event["name"].startswith("systemevent-")
    after = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-spot")
    assert after.status == "TERMINATED" and after.last_stop_timestamp
    assert not after.network_interfaces[0].access_configs[0].nat_i_p
    found = await call(
        lambda: list(
            gce.operations.list(request={"project": gce.project, "zone": ZONE, "filter": PREEMPTED})
        )
    )
    assert len(found) == 1
    op = found[0]
    assert (op.user, op.status_message, op.target_id) == (
        "system",
        "Instance was preempted.",
        vm.id,
    )
    assert op.status == compute_v1.Operation.Status.DONE and op.target_link == vm.self_link
    machine = await gce_sim.gce_admin.instance(gce.project, ZONE, "vm-spot")
    assert machine["pids"] == [] and machine["natIP"] is None


async def test_preemption_with_delete(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    zone = "us-central1-c"
    vm = await call(create, gce, "vm-gone", zone, spot=True, action="DELETE")
    await gce_sim.gce_admin.preempt(gce.project, zone, "vm-gone")
    with pytest.raises(exceptions.NotFound):
        await call(gce.instances.get, project=gce.project, zone=zone, instance="vm-gone")
    aggregated = await call(
        lambda: dict(
            gce.global_operations.aggregated_list(
                request={"project": gce.project, "filter": PREEMPTED}
            )
        )
    )
    assert [op.target_id for op in aggregated[f"zones/{zone}"].operations] == [vm.id]


async def test_only_a_running_spot_vm_is_preempted(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    await call(create, gce, "vm-std")
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await gce_sim.gce_admin.preempt(gce.project, ZONE, "vm-std")
    assert refused.value.response.status_code == 409


async def test_an_operation_that_never_finishes(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    await gce_sim.gce_admin.hang_next_insert()
    future = await call(
        gce.instances.insert, project=gce.project, zone=ZONE, instance_resource=instance("vm-hang")
    )
    with pytest.raises(TimeoutError):
        await call(future.result, timeout=1.5)
    vm = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-hang")
    assert vm.status == "PROVISIONING"
    delete = await call(gce.instances.delete, project=gce.project, zone=ZONE, instance="vm-hang")
    await call(delete.result, timeout=30)
