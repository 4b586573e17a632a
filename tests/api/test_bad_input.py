"""Bad input the fuzzer (test_fuzz.py) found answered with a 500, one test per kind: each now
gets a 422 naming the field, in the one shape every 422 has, and changes nothing. On SQLite
and on PostgreSQL (whose integers and text are the stricter)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from core.models import Event, Machine, SshKey
from tests.api.conftest import Api
from tests.api.test_hibernation_routes import add_machine
from tests.api.test_machines_input import VALID
from tests.api.test_ssh_keys import new_key, public

PAST_INTEGER = 2**31  # one past what an INTEGER column holds
NUL = "\x00"


def refused(response: Any, *loc: str | int) -> str:
    """Assert a 422 naming exactly the field at `loc`; its one-line message."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert [e["loc"] for e in body["detail"]] == [list(loc)], body
    assert {"loc", "msg", "type"} <= set(body["detail"][0])
    message: str = body["message"]
    assert message.startswith(".".join(str(part) for part in loc[1:]) + ": "), message
    return message


@pytest.mark.parametrize(
    ("method", "path", "why"),
    [
        ("DELETE", f"/api/v1/ssh-keys/{PAST_INTEGER}", "less than or equal to 2147483647"),
        ("DELETE", "/api/v1/ssh-keys/99999999999999999999", "less than or equal to 2147483647"),
        ("GET", f"/api/v1/alerts/{PAST_INTEGER}", "less than or equal to 2147483647"),
        ("GET", "/api/v1/alerts/0", "greater than or equal to 1"),
    ],
)
async def test_an_id_past_the_database_range_is_422(
    api_any_db: Api, method: str, path: str, why: str
) -> None:
    route, _ = path.rsplit("/", 1)
    field = "key_id" if "ssh-keys" in route else "alert_id"
    assert why in refused(await api_any_db.call(method, path), "path", field)
    # In range, an id of no row is still the 404 it was.
    assert (await api_any_db.call(method, f"{route}/2147483647")).status_code == 404


async def test_a_cursor_past_the_database_range_is_422(api_any_db: Api) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps([PAST_INTEGER]).encode()).decode().rstrip("=")
    response = await api_any_db.call("GET", "/api/v1/ssh-keys", params={"cursor": cursor})
    refused(response, "query", "cursor")


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"enabled": None}, "enabled", "valid boolean"),
        ({"duration_seconds": None}, "duration_seconds", "valid integer"),
        ({"duration_seconds": False}, "duration_seconds", "valid integer"),
        ({"threshold": "NaN"}, "threshold", "valid number"),
    ],
)
async def test_null_or_a_bool_in_a_list_body_is_422_and_changes_nothing(
    api_any_db: Api, change: dict[str, Any], field: str, why: str
) -> None:
    api = api_any_db
    before = (await api.call("GET", "/api/v1/alerts/rules")).json()
    rule = {"kind": "disk_usage", "threshold": 50.0, **change}
    response = await api.call("PUT", "/api/v1/alerts/rules", json={"rules": [rule]})
    assert why in refused(response, "body", "rules", 0, field)
    assert (await api.call("GET", "/api/v1/alerts/rules")).json() == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_price": "inf"}, "max_price"),
        ({"max_price": "1e308"}, "max_price"),
        ({"min_vram_gb": "nan"}, "min_vram_gb"),
        ({"min_vram_gb": "-inf"}, "min_vram_gb"),
        ({"min_reliability": "nan"}, "min_reliability"),
    ],
)
async def test_an_absurd_float_in_a_query_is_422(
    api: Api, params: dict[str, str], field: str
) -> None:
    refused(await api.call("GET", "/api/v1/offers", params=params), "query", field)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('"max_price": Infinity', "max_price"),
        ('"max_price": 1e308', "max_price"),
        ('"min_vram_gb": NaN', "min_vram_gb"),
    ],
)
async def test_an_absurd_float_in_a_body_is_422_and_writes_nothing(
    api: Api, raw: str, field: str
) -> None:
    body = json.dumps(VALID)[:-1] + ", " + raw + "}"
    headers = {**api.auth(api.alice), "content-type": "application/json"}
    response = await api.http.post("/api/v1/machines", content=body, headers=headers)
    refused(response, "body", field)
    assert (api.count(Machine), api.count(Event)) == (0, 0)


async def test_text_with_a_nul_is_422_naming_the_field_and_writes_nothing(
    api_any_db: Api,
) -> None:
    api = api_any_db
    machine_id = add_machine(api)
    for response, loc in [
        (await api.call("GET", "/api/v1/machines/m-0%00"), ("path", "machine_id")),
        (
            await api.call("POST", "/api/v1/machines", json={**VALID, "image": "a" + NUL}),
            ("body", "image"),
        ),  # fmt: skip
        (
            await api.call(
                "POST", "/api/v1/ssh-keys", json={"name": NUL, "public_key": public(new_key())}
            ),
            ("body", "name"),
        ),  # fmt: skip
        (
            await api.call("GET", "/api/v1/alerts", params={"machine_id": NUL}),
            ("query", "machine_id"),
        ),  # fmt: skip
        (
            await api.call("POST", f"/api/v1/machines/{machine_id}/stop", params={"reason": NUL}),
            ("query", "reason"),
        ),  # fmt: skip
    ]:
        assert refused(response, *loc).endswith("may not contain a NUL character (\\u0000)")
    assert (api.count(Machine), api.count(Event), api.count(SshKey)) == (1, 0, 0)


async def test_an_unknown_series_is_a_422_like_any_other(api: Api) -> None:
    machine_id = add_machine(api)
    response = await api.call(
        "GET", f"/api/v1/machines/{machine_id}/metrics", params={"series": "gpu,warp"}
    )
    assert refused(response, "query", "series") == (
        "series: unknown warp; use any of gpu,vram,cpu,ram,disk,net"
    )
