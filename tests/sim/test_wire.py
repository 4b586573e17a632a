"""The sim's vast.ai wire protocol, spoken over HTTP to a real `python -m sim` process."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fixtures.sim import SimHandle
from tests.sim.helpers import new_key, offer_ids, public, rent


async def test_search_filters_orders_limits_and_prices_storage(sim: SimHandle) -> None:
    query = {
        "verified": {"eq": True},
        "rentable": {"eq": True},
        "rented": {"eq": False},
        "num_gpus": {"eq": "1"},
        "dph_total": {"lte": "2"},
        "reliability2": {"gte": "0.85"},
        "geolocation": {"in": ["US", "CA", "DE"]},
        "gpu_ram": {"gte": 20000.0},
        "order": [["dph_total", "asc"]],
        "type": "ondemand",
        "limit": 7,
        "allocated_storage": 50.0,
    }
    async with sim.client() as client:
        offers = (await client.post("/api/v0/bundles/", json=query)).json()["offers"]

    assert 0 < len(offers) <= 7
    prices = [offer["dph_total"] for offer in offers]
    assert prices == sorted(prices)
    for offer in offers:
        assert offer["num_gpus"] == 1 and offer["dph_total"] <= 2
        assert offer["reliability"] >= 0.85 and offer["gpu_ram"] >= 20000
        assert offer["geolocation"][-2:] in ("US", "CA", "DE")
        assert offer["disk_space"] >= 50
        assert offer["verified"] is True and offer["rented"] is False
        disk_hour = offer["storage_cost"] * 50 / 720
        assert offer["dph_total"] == pytest.approx(offer["dph_base"] + disk_hour, abs=1e-5)


async def test_get_and_new_search_forms_agree_and_bids_use_min_bid(sim: SimHandle) -> None:
    query = {"gpu_name": {"eq": "RTX 3090"}, "order": [["score", "desc"]], "limit": 5}
    async with httpx.AsyncClient(base_url=sim.url) as anonymous:
        posted = (await anonymous.post("/api/v0/bundles", json=query)).json()["offers"]
        got = (await anonymous.get("/api/v0/bundles/", params={"q": json.dumps(query)})).json()
        newer = await anonymous.put("/api/v0/search/asks/", json={"select_cols": ["*"], "q": query})
        bids = (await anonymous.post("/api/v0/bundles/", json={**query, "type": "bid"})).json()

    ids = [offer["id"] for offer in posted]
    assert ids and [offer["id"] for offer in got["offers"]] == ids
    assert [offer["id"] for offer in newer.json()["offers"]] == ids
    assert [offer["score"] for offer in posted] == sorted(
        (o["score"] for o in posted), reverse=True
    )
    for offer in bids["offers"]:
        assert offer["is_bid"] is True
        assert offer["dph_total"] < offer["dph_base"]
        assert offer["dph_total"] == pytest.approx(
            offer["min_bid"] + offer["storage_cost"] * 5 / 720, abs=1e-5
        )


async def test_bad_key_is_refused_with_auth_error(sim: SimHandle) -> None:
    async with httpx.AsyncClient(base_url=sim.url, headers={"Authorization": "Bearer wrong"}) as c:
        listing = await c.get("/api/v1/instances/")
        search = await c.post("/api/v0/bundles/", json={})
    async with httpx.AsyncClient(base_url=sim.url) as c:
        legacy_param = await c.get("/api/v1/instances/", params={"api_key": sim.api_key})
    assert listing.status_code == 401
    assert listing.json() == {"success": False, "error": "auth_error", "msg": "Invalid user key"}
    assert search.status_code == 401
    assert legacy_param.status_code == 200


async def test_create_rents_the_offer_once_and_show_reports_the_machine(sim: SimHandle) -> None:
    await sim.admin.set_boot_delay(3600)  # hold the boot to look at it
    async with sim.client() as client:
        offer_id = (await offer_ids(client))[0]
        instance_id = await rent(
            client, offer_id, disk=32, label="wf-1", env={"FOO": "bar", "-p 8000:8000": "1"}
        )
        again = await client.put(f"/api/v0/asks/{offer_id}/", json={"image": "x"})
        booting = (await client.get(f"/api/v0/instances/{instance_id}/")).json()["instances"]
        still_listed = offer_id in await offer_ids(client)

    assert again.status_code == 404
    assert again.json() == {
        "success": False,
        "error": "invalid_args",
        "msg": f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available.",
        "ask_id": offer_id,
    }
    assert not still_listed
    assert booting["actual_status"] is None and booting["intended_status"] == "running"
    assert "ports" not in booting

    await sim.admin.set_boot_delay(0.2)
    running = await sim.wait_for_status(instance_id, "running")
    assert running["id"] == instance_id and running["label"] == "wf-1"
    assert running["intended_status"] == running["cur_state"] == "running"
    assert running["ssh_host"] == "127.0.0.1" and isinstance(running["ssh_port"], int)
    assert running["ports"]["22/tcp"][0]["HostPort"] == str(running["ssh_port"])
    # Published on a host port of its own (its own network namespace), or on 8000 where the
    # sim has no namespaces (tests/sim/test_ports.py covers both).
    assert running["ports"]["8000/tcp"][0]["HostPort"].isdigit()
    assert running["public_ipaddr"] == "127.0.0.1"
    assert isinstance(running["local_ipaddrs"], str)
    assert ["FOO", "bar"] in running["extra_env"]
    assert running["disk_space"] == 32
    assert running["dph_total"] == pytest.approx(
        running["dph_base"] + running["storage_cost"] * 32 / 720, abs=1e-5
    )
    assert running["status_msg"].startswith("success")


async def test_list_filters_by_label_and_pages_with_a_cursor(sim: SimHandle) -> None:
    async with sim.client() as client:
        offers = await offer_ids(client, {"order": [["dph_total", "asc"]], "limit": 7})
        mine = [await rent(client, offer, label="batch") for offer in offers[:5]]
        other = await rent(client, offers[5], label="other")

        seen: list[int] = []
        params = {
            "select_filters": json.dumps({"label": {"eq": "batch"}}),
            "order_by": json.dumps([{"col": "id", "dir": "desc"}]),
            "limit": "2",
        }
        pages = 0
        while True:
            page = (await client.get("/api/v1/instances/", params=params)).json()
            pages += 1
            assert page["success"] is True and len(page["instances"]) <= 2
            seen += [row["id"] for row in page["instances"]]
            if not page["next_token"]:
                break
            params["after_token"] = page["next_token"]

        everything = (await client.get("/api/v1/instances")).json()
        computed = await client.get(
            "/api/v1/instances/", params={"select_filters": json.dumps({"dph_total": {"lt": 1}})}
        )
        bad_token = await client.get("/api/v1/instances/", params={"after_token": "%%%"})
        legacy = await client.get("/api/v0/instances/", params={"owner": "me"})

    assert seen == sorted(mine, reverse=True) and pages == 3
    assert everything["total_instances"] == 6 and everything["next_token"] is None
    assert everything["label_counts"] == {"batch": 5, "other": 1}
    assert other in [row["id"] for row in everything["instances"]]
    assert computed.status_code == 400 and computed.json()["error"] == "invalid_args"
    assert bad_token.status_code == 400 and bad_token.json()["error"] == "invalid_token"
    assert legacy.status_code == 410 and legacy.json()["error"] == "deprecated_endpoint"


async def test_stop_start_reboot_label_destroy(sim: SimHandle) -> None:
    async with sim.client() as client:
        offer_id = (await offer_ids(client))[0]
        instance_id = await rent(client, offer_id)
        await sim.wait_for_status(instance_id, "running")

        stop = await client.put(f"/api/v0/instances/{instance_id}/", json={"state": "stopped"})
        stopped = await sim.wait_for_status(instance_id, "stopped")
        start = await client.put(f"/api/v0/instances/{instance_id}", json={"state": "running"})
        started = await sim.wait_for_status(instance_id, "running")
        await sim.admin.set_boot_delay(3600)
        reboot = await client.put(f"/api/v0/instances/reboot/{instance_id}/", json={})
        rebooting = (await client.get(f"/api/v0/instances/{instance_id}/")).json()["instances"]
        await sim.admin.set_boot_delay(0.2)
        await sim.wait_for_status(instance_id, "running")
        label = await client.put(f"/api/v0/instances/{instance_id}/", json={"label": "renamed"})
        labelled = (await client.get(f"/api/v0/instances/{instance_id}/")).json()["instances"]

        destroy = await client.request("DELETE", f"/api/v0/instances/{instance_id}/", json={})
        gone = (await client.get(f"/api/v0/instances/{instance_id}/")).json()
        again = await client.request("DELETE", f"/api/v0/instances/{instance_id}/", json={})
        back_on_market = offer_id in await offer_ids(client)
        missing_stop = await client.put(
            f"/api/v0/instances/{instance_id}/", json={"state": "stopped"}
        )

    assert stop.json() == {"success": True}
    assert (stopped["intended_status"], stopped["cur_state"]) == ("stopped", "stopped")
    assert "ports" not in stopped
    assert start.json() == {"success": True} and started["intended_status"] == "running"
    assert reboot.json() == {"success": True} and rebooting["actual_status"] == "rebooting"
    assert label.json()["success"] is True and labelled["label"] == "renamed"
    assert destroy.json() == {"success": True}
    assert gone == {"instances": None}
    assert again.status_code == 404 and again.json()["error"] == "no_such_instance"
    assert missing_stop.status_code == 404
    assert back_on_market


async def test_injected_429_and_5xx_answer_the_next_calls_then_stop(sim: SimHandle) -> None:
    await sim.admin.fail_next(2, status=429, path_prefix="/api/v0/bundles")
    await sim.admin.fail_next(1, status=429, method="GET", body="json", retry_after=1.5)
    await sim.admin.fail_next(1, status=503, path_prefix="/api/v0/asks")
    async with sim.client() as client:
        first = await client.post("/api/v0/bundles/", json={})
        second = await client.post("/api/v0/bundles/", json={})
        third = await client.post("/api/v0/bundles/", json={})
        listing = await client.get("/api/v1/instances/")
        create = await client.put(f"/api/v0/asks/{third.json()['offers'][0]['id']}/", json={})
        listing_again = await client.get("/api/v1/instances/")

    assert first.status_code == second.status_code == 429
    assert first.text == "API requests too frequent"
    assert third.status_code == 200
    assert listing.status_code == 429 and listing.headers["Retry-After"] == "1.5"
    assert "API requests too frequent" in listing.json()["detail"]
    assert create.status_code == 503
    assert listing_again.status_code == 200
    assert (await sim.admin.status())["faults"] == []


async def test_rate_limiter_answers_429_within_the_interval(sim: SimHandle) -> None:
    # Scaled up so that two calls in a row always fall inside the interval.
    await sim.admin.set_rate_limit(True, scale=50)
    async with sim.client() as client:
        first = await client.get("/api/v1/instances/")
        second = await client.get("/api/v1/instances/")
        other_endpoint = await client.get("/api/v0/users/current")
    await sim.admin.set_rate_limit(False)

    assert first.status_code == 200
    assert second.status_code == 429 and "API requests too frequent" in second.text
    assert other_endpoint.status_code == 200


async def test_taken_offer_leaves_the_market(sim: SimHandle) -> None:
    async with sim.client() as client:
        offer_id = (await offer_ids(client))[0]
        await sim.admin.take_offer(offer_id)
        listed = offer_id in await offer_ids(client)
        create = await client.put(f"/api/v0/asks/{offer_id}/", json={"image": "x"})

    assert not listed
    assert create.status_code == 404 and "no_such_ask" in create.json()["msg"]


async def test_account_and_instance_keys(sim: SimHandle) -> None:
    first, second = public(new_key()), public(new_key())
    async with sim.client() as client:
        added = (await client.post("/api/v0/ssh/", json={"ssh_key": first})).json()
        instance_id = await rent(client)
        attached = await client.post(
            f"/api/v0/instances/{instance_id}/ssh/", json={"ssh_key": second}
        )
        keys = json.loads(
            (await client.get(f"/api/v0/instances/{instance_id}/ssh/")).json()["ssh_keys"]
        )
        detach = await client.delete(
            f"/api/v0/instances/{instance_id}/ssh/{attached.json()['key']['id']}/"
        )
        after = json.loads(
            (await client.get(f"/api/v0/instances/{instance_id}/ssh/")).json()["ssh_keys"]
        )
        removed = await client.delete(f"/api/v0/ssh/{added['key']['id']}/")
        account = (await client.get("/api/v0/ssh/")).json()
        garbage = await client.post("/api/v0/ssh/", json={"ssh_key": "not a key"})
        user = (await client.get("/api/v0/users/current")).json()

    assert added["success"] is True and added["key"]["public_key"] == first
    assert [key["public_key"] for key in keys] == [first, second]
    assert detach.json()["success"] is True
    assert [key["public_key"] for key in after] == [first]
    assert removed.json() == {"success": True} and account == []
    assert garbage.status_code == 400
    assert user["id"] == 1 and "api_key" not in user and user["credit"] > 0
