"""The Compute Engine v1 routes (reference §2.2, §7) under /compute/v1/projects/{project}."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from sim.gce import filters
from sim.gce.catalogue import BASE, MACHINE_TYPES, ZONES, machine_type_json, zone_json
from sim.gce.errors import invalid, not_found, resource
from sim.gce.instances import GceCloud
from sim.gce.validation import check_zone
from sim.gce.views import instance_json, operation_json

PREFIX = "/compute/v1/projects/{project}"
Json = dict[str, Any]


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise invalid(f"Invalid JSON payload received. {exc}") from exc


def _max_results(request: Request) -> int | None:
    value = request.query_params.get("maxResults")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise invalid(f"Invalid value for field 'maxResults': '{value}'.") from exc


def _listing(
    request: Request, kind: str, scope: str, items: list[Json], default_order: str
) -> Json:
    """Filter, order and page `items`: GCE leaves out `items` (and the token) when empty."""
    query = request.query_params
    matches = filters.compile_filter(query.get("filter"))
    matching = [item for item in items if matches(item)]
    ordered = filters.order(matching, query.get("orderBy"), default_order)
    chunk, token = filters.page(ordered, _max_results(request), query.get("pageToken"))
    body: Json = {"kind": kind, "id": scope, "selfLink": f"{BASE}/{scope}"}
    if chunk:
        body["items"] = chunk
    if token:
        body["nextPageToken"] = token
    return body


def _aggregated(
    request: Request, project: str, kind: str, key: str, scoped: list[tuple[str, Json]]
) -> Json:
    """`zones/{z}` -> {key: [...]} for the zones on this page, a warning for the others."""
    query = request.query_params
    matches = filters.compile_filter(query.get("filter"))
    flat = sorted(
        ((zone, item) for zone, item in scoped if matches(item)),
        key=lambda pair: (pair[0], str(pair[1].get("name", ""))),
    )
    chunk, token = filters.page(flat, _max_results(request), query.get("pageToken"))
    grouped: dict[str, Json] = {}
    for zone in ZONES:
        on_page = [item for z, item in chunk if z == zone]
        scope = f"zones/{zone}"
        if on_page:
            grouped[scope] = {key: on_page}
        else:
            grouped[scope] = {
                "warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": f"There are no results for scope '{scope}' on this page.",
                    "data": [{"key": "scope", "value": scope}],
                }
            }
    body: Json = {
        "kind": kind,
        "id": f"projects/{project}/aggregated/{key}",
        "items": grouped,
        "selfLink": f"{BASE}/projects/{project}/aggregated/{key}",
    }
    if token:
        body["nextPageToken"] = token
    return body


def gce_router(cloud: GceCloud) -> APIRouter:
    router = APIRouter(prefix=PREFIX)
    ops = cloud.ops

    # ----- instances

    @router.post("/zones/{zone}/instances")
    async def insert(project: str, zone: str, request: Request) -> Json:
        body = await _body(request)
        op = await cloud.insert(project, zone, body, request.query_params.get("requestId"))
        return operation_json(op)

    @router.get("/zones/{zone}/instances")
    async def list_instances(project: str, zone: str, request: Request) -> Json:
        check_zone(project, zone)
        items = [instance_json(r) for r in cloud.in_zone(project, zone)]
        scope = f"projects/{project}/zones/{zone}/instances"
        return _listing(request, "compute#instanceList", scope, items, "name")

    @router.get("/aggregated/instances")
    async def aggregated_instances(project: str, request: Request) -> Json:
        scoped = [
            (record.zone, instance_json(record))
            for record in cloud.state.instances.values()
            if record.project == project
        ]
        kind = "compute#instanceAggregatedList"
        return _aggregated(request, project, kind, "instances", scoped)

    @router.get("/zones/{zone}/instances/{name}")
    async def get_instance(project: str, zone: str, name: str) -> Json:
        return instance_json(cloud.get(project, zone, name))

    @router.delete("/zones/{zone}/instances/{name}")
    async def delete(project: str, zone: str, name: str, request: Request) -> Json:
        op = await cloud.delete(project, zone, name, request.query_params.get("requestId"))
        return operation_json(op)

    @router.post("/zones/{zone}/instances/{name}/start")
    async def start(project: str, zone: str, name: str, request: Request) -> Json:
        op = await cloud.start(project, zone, name, request.query_params.get("requestId"))
        return operation_json(op)

    @router.post("/zones/{zone}/instances/{name}/stop")
    async def stop(project: str, zone: str, name: str, request: Request) -> Json:
        op = await cloud.stop(project, zone, name, request.query_params.get("requestId"))
        return operation_json(op)

    @router.post("/zones/{zone}/instances/{name}/setLabels")
    async def set_labels(project: str, zone: str, name: str, request: Request) -> Json:
        body = await _body(request)
        rid = request.query_params.get("requestId")
        return operation_json(cloud.set_labels(project, zone, name, body, rid))

    @router.post("/zones/{zone}/instances/{name}/setMetadata")
    async def set_metadata(project: str, zone: str, name: str, request: Request) -> Json:
        body = await _body(request)
        rid = request.query_params.get("requestId")
        return operation_json(cloud.set_metadata(project, zone, name, body, rid))

    # ----- operations

    @router.get("/zones/{zone}/operations")
    async def list_operations(project: str, zone: str, request: Request) -> Json:
        check_zone(project, zone)
        items = [
            operation_json(op)
            for op in ops.state.operations.values()
            if (op.project, op.zone) == (project, zone)
        ]
        scope = f"projects/{project}/zones/{zone}/operations"
        return _listing(request, "compute#operationList", scope, items, "insertTime")

    @router.get("/aggregated/operations")
    async def aggregated_operations(project: str, request: Request) -> Json:
        scoped = [
            (op.zone, operation_json(op))
            for op in ops.state.operations.values()
            if op.project == project
        ]
        kind = "compute#operationAggregatedList"
        return _aggregated(request, project, kind, "operations", scoped)

    @router.get("/zones/{zone}/operations/{name}")
    async def get_operation(project: str, zone: str, name: str) -> Json:
        check_zone(project, zone)
        return operation_json(ops.get(project, zone, name))

    @router.post("/zones/{zone}/operations/{name}/wait")
    async def wait_operation(project: str, zone: str, name: str) -> Json:
        check_zone(project, zone)
        return operation_json(await ops.wait(ops.get(project, zone, name)))

    # ----- the catalogue

    @router.get("/zones")
    async def list_zones(project: str, request: Request) -> Json:
        items = [zone_json(project, zone) for zone in ZONES]
        return _listing(request, "compute#zoneList", f"projects/{project}/zones", items, "name")

    @router.get("/zones/{zone}")
    async def get_zone(project: str, zone: str) -> Json:
        check_zone(project, zone)
        return zone_json(project, zone)

    @router.get("/zones/{zone}/machineTypes")
    async def list_machine_types(project: str, zone: str, request: Request) -> Json:
        check_zone(project, zone)
        items = [machine_type_json(project, zone, name) for name in MACHINE_TYPES]
        scope = f"projects/{project}/zones/{zone}/machineTypes"
        return _listing(request, "compute#machineTypeList", scope, items, "name")

    @router.get("/zones/{zone}/machineTypes/{name}")
    async def get_machine_type(project: str, zone: str, name: str) -> Json:
        check_zone(project, zone)
        if name not in MACHINE_TYPES:
            raise not_found(resource(project, "zones", zone, "machineTypes", name))
        return machine_type_json(project, zone, name)

    return router
