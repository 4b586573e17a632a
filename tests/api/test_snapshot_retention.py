"""`/api/v1/snapshots/retention`: each user's own snapshot retention over the server's defaults;
bad changes are refused and change nothing; nobody sees or changes another user's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from core.models import SnapshotRetention
from tests.api.conftest import Api, make_settings, running_api, temporal_address

PATH = "/api/v1/snapshots/retention"
DEFAULTS = {"keep_last": 3, "deleted_retention_days": 0}


async def retention(api: Api, token: str | None = None) -> dict[str, Any]:
    response = await api.call("GET", PATH, token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def put(api: Api, body: Any, token: str | None = None) -> Any:
    return await api.call("PUT", PATH, token, json=body)


async def test_defaults_then_my_values_then_back(api: Api) -> None:
    assert await retention(api) == {**DEFAULTS, "defaults": DEFAULTS, "customized": False}

    changed = await put(api, {"keep_last": 1})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "keep_last": 1,
        "deleted_retention_days": 0,
        "defaults": DEFAULTS,
        "customized": True,
    }
    # A field left out keeps its value.
    assert (await put(api, {"deleted_retention_days": 30})).status_code == 200
    assert await retention(api) == {
        "keep_last": 1,
        "deleted_retention_days": 30,
        "defaults": DEFAULTS,
        "customized": True,
    }
    # null puts that one field back to the default.
    reset_one = (await put(api, {"keep_last": None})).json()
    assert (reset_one["keep_last"], reset_one["deleted_retention_days"]) == (3, 30)
    assert reset_one["customized"] is True

    deleted = await api.call("DELETE", PATH)
    assert deleted.status_code == 200
    assert deleted.json() == {**DEFAULTS, "defaults": DEFAULTS, "customized": False}
    assert await retention(api) == deleted.json()
    assert api.count(SnapshotRetention) == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"keep_last": 0}, "keep_last: Input should be greater than or equal to 1"),
        ({"keep_last": 1001}, "keep_last: Input should be less than or equal to 1000"),
        ({"deleted_retention_days": -1}, "deleted_retention_days: Input should be greater"),
        ({"deleted_retention_days": 3651}, "deleted_retention_days: Input should be less"),
        ({"keep_last": "2"}, "keep_last: Input should be a valid integer"),
        ({"keep_last": 2.5}, "keep_last: Input should be a valid integer"),
        ({"keep_last": True}, "keep_last: Input should be a valid integer"),
        ({"keep_last": 2, "keep_forever": True}, "keep_forever: Extra inputs are not permitted"),
        ({}, "nothing to change: give at least one of keep_last, deleted_retention_days"),
        ([1], "Input should be a valid dictionary"),
    ],
)
async def test_a_bad_change_is_refused_and_changes_nothing(api: Api, body: Any, says: str) -> None:
    assert (await put(api, {"keep_last": 5, "deleted_retention_days": 9})).status_code == 200
    before = await retention(api)

    refused = await put(api, body)

    assert refused.status_code == 422, refused.text
    assert says in refused.json()["message"]
    assert await retention(api) == before


async def test_each_user_sees_and_changes_only_their_own(api: Api) -> None:
    assert (await put(api, {"keep_last": 1, "deleted_retention_days": 7})).status_code == 200

    assert await retention(api, api.bob) == {**DEFAULTS, "defaults": DEFAULTS, "customized": False}
    assert (await put(api, {"keep_last": 10}, api.bob)).json()["keep_last"] == 10
    assert (await api.call("DELETE", PATH, api.bob)).status_code == 200

    mine = await retention(api)
    assert (mine["keep_last"], mine["deleted_retention_days"]) == (1, 7)


async def test_without_a_token_nothing_is_read_or_changed(api: Api) -> None:
    assert (await put(api, {"keep_last": 2})).status_code == 200
    for method, body in (("GET", None), ("PUT", {"keep_last": 9}), ("DELETE", None)):
        response = await api.http.request(method, PATH, json=body)
        assert response.status_code == 401, (method, response.text)
    assert (await retention(api))["keep_last"] == 2


async def test_the_defaults_are_the_servers_settings(
    tmp_path: Path, sqlite_url: str, dev_env: WorkflowEnvironment
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        temporal_address(dev_env),
        snapshot_keep_last=7,
        snapshot_deleted_retention_days=14,
    )
    async with running_api(settings) as api:
        shown = await retention(api)
        assert shown["defaults"] == {"keep_last": 7, "deleted_retention_days": 14}
        assert (shown["keep_last"], shown["deleted_retention_days"]) == (7, 14)
        days_only = (await put(api, {"deleted_retention_days": 0})).json()
        assert (days_only["keep_last"], days_only["deleted_retention_days"]) == (7, 0)
