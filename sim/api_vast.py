"""The vast.ai REST routes, shaped as docs/vast_wire.md describes them.

Bodies are read leniently as JSON objects (clients send `{}` even on DELETE); every route
answers with and without a trailing slash, since clients use both.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sim.errors import VastError, auth_error, invalid_args
from sim.listing import list_page
from sim.market import search_offers
from sim.runtime import Sim
from sim.store import SshKey
from sim.views import instance_json

USER_ID = 1


def caller_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("api_key")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise invalid_args("request body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise invalid_args("request body must be a JSON object")
    return value


def _id(value: str, kind: str = "instance") -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise VastError(400, "invalid_id", f"{value!r} is not a valid {kind} id") from exc


def _key_json(key: SshKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "user_id": USER_ID,
        "public_key": key.public_key,
        "key": key.public_key,
        "created_at": key.created_at,
        "deleted_at": None,
    }


def vast_router(sim: Sim) -> APIRouter:
    router = APIRouter()
    machines = sim.machines

    def route(path: str, methods: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            router.add_api_route(path, handler, methods=methods)
            router.add_api_route(path + "/", handler, methods=methods, include_in_schema=False)
            return handler

        return register

    def require_user(request: Request) -> None:
        key = caller_key(request)
        if key is None or not hmac.compare_digest(key.encode(), sim.config.api_key.encode()):
            raise auth_error()

    def anonymous_or_user(request: Request) -> None:
        # Offer search works without a key (gpuhunt), but a wrong key is still refused.
        if caller_key(request) is not None:
            require_user(request)

    def offers(query: dict[str, Any]) -> dict[str, Any]:
        return {"offers": search_offers(sim.catalogue, sim.state.rented_offers(), query)}

    # ----- offers

    @route("/api/v0/bundles", ["POST"])
    async def search_post(request: Request) -> dict[str, Any]:
        anonymous_or_user(request)
        return offers(await _body(request))

    @route("/api/v0/bundles", ["GET"])
    async def search_get(request: Request) -> dict[str, Any]:
        anonymous_or_user(request)
        raw = request.query_params.get("q") or "{}"
        try:
            query = json.loads(raw)
        except ValueError as exc:
            raise invalid_args("q must be a JSON object") from exc
        if not isinstance(query, dict):
            raise invalid_args("q must be a JSON object")
        return offers(query)

    @route("/api/v0/search/asks", ["PUT"])
    async def search_new(request: Request) -> dict[str, Any]:
        anonymous_or_user(request)
        body = await _body(request)
        query = body.get("q", {})
        if not isinstance(query, dict):
            raise invalid_args("q must be a JSON object")
        return offers(query)

    # ----- create

    @route("/api/v0/asks/{offer_id}", ["PUT"])
    async def create(offer_id: str, request: Request) -> JSONResponse:
        require_user(request)
        ask = _id(offer_id, "offer")
        record = machines.create(ask, await _body(request))
        if record.actual_status == "stopped" and record.bid_price is not None:
            min_bid = record.offer["min_bid"]
            return JSONResponse(
                {
                    "success": False,
                    "error": "invalid_price",
                    "msg": f"bid {record.bid_price} is below the minimum {min_bid}; "
                    "the instance was created stopped",
                    "new_contract": record.id,
                    "ask_id": ask,
                }
            )
        return JSONResponse(
            {"success": True, "new_contract": record.id, "instance_api_key": record.api_key}
        )

    # ----- instances

    @route("/api/v0/instances", ["GET"])
    async def legacy_list(request: Request) -> JSONResponse:
        require_user(request)
        raise VastError(
            410,
            "deprecated_endpoint",
            "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.",
        )

    @route("/api/v1/instances", ["GET"])
    async def list_instances(request: Request) -> dict[str, Any]:
        require_user(request)
        now = time.time()
        rows = [instance_json(record, now) for record in sim.state.instances.values()]
        return list_page(rows, dict(request.query_params))

    @route("/api/v0/instances/reboot/{instance_id}", ["PUT"])
    async def reboot(instance_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        await machines.reboot(_id(instance_id))
        return {"success": True}

    @route("/api/v0/instances/recycle/{instance_id}", ["PUT"])
    async def recycle(instance_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        await machines.reboot(_id(instance_id))
        return {"success": True}

    @route("/api/v0/instances/{instance_id}", ["GET"])
    async def show(instance_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        record = sim.state.instances.get(_id(instance_id))
        return {"instances": None if record is None else instance_json(record, time.time())}

    @route("/api/v0/instances/{instance_id}", ["PUT"])
    async def manage(instance_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        target = _id(instance_id)
        body = await _body(request)
        machines.get(target)
        answer: dict[str, Any] = {"success": True}
        if "label" in body:
            label = body["label"]
            machines.set_label(target, None if label is None else str(label))
            answer["msg"] = f"label for {target} set to '{label}'"
        state = body.get("state")
        if state == "running":
            await machines.start(target)
        elif state == "stopped":
            await machines.stop(target)
        elif state is not None:
            raise invalid_args(f"state must be 'running' or 'stopped', got {state!r}")
        elif "label" not in body:
            raise invalid_args("nothing to change: send state or label")
        return answer

    @route("/api/v0/instances/{instance_id}", ["DELETE"])
    async def destroy(instance_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        await machines.destroy(_id(instance_id))
        return {"success": True}

    # ----- SSH keys

    @route("/api/v0/instances/{instance_id}/ssh", ["POST"])
    async def attach_key(instance_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        target = _id(instance_id)
        key = machines.attach_key(target, (await _body(request)).get("ssh_key"))
        return {
            "success": True,
            "msg": f"ssh key added to instance {target}",
            "key": _key_json(key),
        }

    @route("/api/v0/instances/{instance_id}/ssh", ["GET"])
    async def instance_keys(instance_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        record = machines.get(_id(instance_id))
        # vast.ai returns this list as a JSON string.
        return {"success": True, "ssh_keys": json.dumps([_key_json(k) for k in record.ssh_keys])}

    @route("/api/v0/instances/{instance_id}/ssh/{key_id}", ["DELETE"])
    async def detach_key(instance_id: str, key_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        machines.detach_key(_id(instance_id), _id(key_id, "ssh key"))
        return {"success": True, "msg": "ssh key removed from instance"}

    @route("/api/v0/ssh", ["GET"])
    async def account_keys(request: Request) -> list[dict[str, Any]]:
        require_user(request)
        return [_key_json(key) for key in sim.state.account_keys]

    @route("/api/v0/ssh", ["POST"])
    async def add_account_key(request: Request) -> dict[str, Any]:
        require_user(request)
        key = machines.add_account_key((await _body(request)).get("ssh_key"))
        return {"success": True, "key": _key_json(key)}

    @route("/api/v0/ssh/{key_id}", ["DELETE"])
    async def delete_account_key(key_id: str, request: Request) -> dict[str, Any]:
        require_user(request)
        machines.delete_account_key(_id(key_id, "ssh key"))
        return {"success": True}

    # ----- account

    @route("/api/v0/users/current", ["GET"])
    async def current_user(request: Request) -> dict[str, Any]:
        require_user(request)
        keys = sim.state.account_keys
        return {
            "id": USER_ID,
            "username": "sim",
            "email": "sim@dumont.local",
            "fullname": "Dumont Sim",
            "key_id": USER_ID,
            "sid": f"sim-{USER_ID}",
            "ssh_key": keys[0].public_key if keys else "",
            "credit": 1000.0,
            "balance": 0.0,
            "balance_threshold": 0.0,
            "balance_threshold_enabled": False,
            "billed_expected": 0.0,
            "paid_expected": 0.0,
            "can_pay": True,
            "has_billing": True,
        }

    return router
