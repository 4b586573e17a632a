"""The standby routes against real Temporal: the machine workflow's standby updates are not on
`MachineWorkflow` yet (written apart), so a stand-in workflow with the same update names and
the contract's validators answers them (tests/api/standby_stand_in.py) and the API's calls,
waits and refusals are the real ones. Bad bodies are 422s naming the field that reach neither
the database nor the workflow; another owner's machine is a 404 on every route; the read model
is the projection row with the agent's sync figures; a new machine's standby reaches its real
workflow's input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType

from core.contracts import machine_workflow_id
from core.contracts.standby import (
    Side,
    StandbyConfig,
    StandbyReason,
    StandbyStatus,
    SyncHealth,
)
from core.contracts.workflow import MachineInput
from core.db import session_scope
from core.models import Machine
from core.standby.projection import apply_standby
from core.standby.table import MachineStandby, StandbySettings
from tests.api.conftest import Api
from tests.api.standby_stand_in import NO_STANDBY, ON_STANDBY, STANDBY_VM, StandIns, stand_ins
from tests.api.test_bad_input import refused
from tests.api.test_hibernation_routes import add_machine
from tests.api.test_machines_input import VALID

SETTINGS = "/api/v1/settings/standby"
DEFAULTS: dict[str, Any] = {
    "provider": "gcp",
    "machine_type": "e2-medium",
    "zone": None,
    "spot": True,
    "disk_gb": 100,
    "max_price": None,
    "sync_interval_seconds": 30,
    "excludes": [],
    "auto_migrate": True,
    "idle_migrate_minutes": 10,
}

# (body, the field the 422 names, words its message holds): for every field of a standby body.
BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"provider": "aws"}, "provider", "must be one of gcp, vast"),
    ({"provider": 1}, "provider", "valid string"),
    ({"provider": None}, "provider", "may not be null"),
    ({"provider": "vast"}, "provider", "vast.ai CPU offers are not supported yet"),
    ({"machine_type": "e2 medium"}, "machine_type", "GCE machine type"),
    ({"machine_type": "x" * 65}, "machine_type", "at most 64"),
    ({"zone": "europe/west1"}, "zone", "GCE zone"),
    ({"zone": 5}, "zone", "valid string"),
    ({"spot": "yes"}, "spot", "valid boolean"),
    ({"spot": 1}, "spot", "valid boolean"),
    ({"disk_gb": 9}, "disk_gb", "between 10 and 65536"),
    ({"disk_gb": 65537}, "disk_gb", "between 10 and 65536"),
    ({"disk_gb": "100"}, "disk_gb", "valid integer"),
    ({"disk_gb": 100.5}, "disk_gb", "valid integer"),
    ({"disk_gb": None}, "disk_gb", "may not be null"),
    ({"max_price": 0}, "max_price", "above 0"),
    ({"max_price": 101}, "max_price", "at most 100"),
    ({"max_price": "1"}, "max_price", "valid number"),
    ({"sync_interval_seconds": 4}, "sync_interval_seconds", "between 5 and 3600"),
    ({"sync_interval_seconds": 3601}, "sync_interval_seconds", "between 5 and 3600"),
    ({"sync_interval_seconds": True}, "sync_interval_seconds", "valid integer"),
    ({"excludes": "*.tmp"}, "excludes", "valid list"),
    ({"excludes": [""]}, "excludes", "1 to 256 characters"),
    ({"excludes": ["a" * 257]}, "excludes", "1 to 256 characters"),
    ({"excludes": ["--delete-excluded"]}, "excludes", "is not a file pattern"),
    ({"excludes": ["a\nb"]}, "excludes", "is not a file pattern"),
    ({"excludes": [f"p{i}" for i in range(65)]}, "excludes", "at most 64 patterns"),
    ({"auto_migrate": "true"}, "auto_migrate", "valid boolean"),
    ({"idle_migrate_minutes": 0}, "idle_migrate_minutes", "between 1 and 10080"),
    ({"idle_migrate_minutes": 10081}, "idle_migrate_minutes", "between 1 and 10080"),
    ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
]


@pytest.fixture
async def standins(api: Api) -> AsyncIterator[StandIns]:
    async with stand_ins(await api.app.state.temporal.client()) as running:
        yield running


async def machine_with_stand_in(api: Api, standins: StandIns, **fields: Any) -> str:
    machine_id = add_machine(api, **fields)
    await standins.start(machine_id, fields.get("status", "running"))
    return machine_id


def project(api: Api, machine_id: str, status: StandbyStatus) -> None:
    """What the machine workflow's outbox writes after a change of its standby."""
    with session_scope(api.engine) as session:
        apply_standby(session, machine_id, status)


def standby_row(api: Api, machine_id: str) -> MachineStandby | None:
    with session_scope(api.engine) as session:
        return session.get(MachineStandby, machine_id)


async def test_settings_round_trip(api: Api) -> None:
    shown = await api.call("GET", SETTINGS)
    assert shown.status_code == 200, shown.text
    assert shown.json() == {**DEFAULTS, "auto_standby": False, "updated_at": None}
    body = {"auto_standby": True, "zone": "europe-west1-b", "excludes": ["*.tmp"]}
    saved = await api.call("PUT", SETTINGS, json=body)
    assert saved.status_code == 200, saved.text
    assert {k: v for k, v in saved.json().items() if k != "updated_at"} == {**DEFAULTS, **body}
    assert (await api.call("GET", SETTINGS)).json() == saved.json()
    # Partial: what is left out keeps its value; null clears a nullable field.
    again = await api.call("PUT", SETTINGS, json={"disk_gb": 40, "zone": None})
    assert again.json() == {
        **saved.json(),
        "disk_gb": 40,
        "zone": None,
        "updated_at": again.json()["updated_at"],
    }
    # Bob has his own.
    theirs = (await api.call("GET", SETTINGS, token=api.bob)).json()
    assert theirs == {**DEFAULTS, "auto_standby": False, "updated_at": None}


async def test_bad_settings_are_422_naming_the_field_and_change_nothing(api: Api) -> None:
    saved = (await api.call("PUT", SETTINGS, json={"disk_gb": 60})).json()
    bad = [*BAD_FIELDS, ({"auto_standby": "on"}, "auto_standby", "valid boolean")]
    bad.append(({"enabled": True}, "enabled", "Extra inputs are not permitted"))
    for change, field, words in bad:
        response = await api.call("PUT", SETTINGS, json={"auto_standby": True, **change})
        assert words in refused(response, "body", field), (change, response.text)
    assert (await api.call("GET", SETTINGS)).json() == saved
    not_an_object = await api.call("PUT", SETTINGS, json=["disk_gb"])
    assert not_an_object.status_code == 422


async def test_bad_machine_standby_bodies_reach_nothing(api: Api, standins: StandIns) -> None:
    machine_id = await machine_with_stand_in(api, standins)
    path = f"/api/v1/machines/{machine_id}/standby"
    bad = [*BAD_FIELDS, ({"enabled": "true"}, "enabled", "valid boolean")]
    for change, field, words in bad:
        response = await api.call("PUT", path, json={"enabled": True, **change})
        assert words in refused(response, "body", field), (change, response.text)
    for body in ({"to": "tpu"}, {"to": None}, {}, {"to": "cpu", "now": True}):
        response = await api.call("POST", f"/api/v1/machines/{machine_id}/migrate", json=body)
        field = "now" if "now" in body else "to"
        refused(response, "body", field)
    seen = await standins.seen(machine_id)
    assert (seen.configured, seen.migrations) == ([], [])
    assert standby_row(api, machine_id) is None and api.count(StandbySettings) == 0


async def test_another_owners_or_an_unknown_machine_is_404_everywhere(
    api: Api, standins: StandIns
) -> None:
    machine_id = await machine_with_stand_in(api, standins)
    for token, target in ((api.bob, machine_id), (api.alice, "m-000000000000")):
        for method, suffix, body in (
            ("GET", "standby", None),
            ("PUT", "standby", {"enabled": True}),
            ("DELETE", "standby", None),
            ("POST", "migrate", {"to": "cpu"}),
        ):
            path = f"/api/v1/machines/{target}/{suffix}"
            response = await api.call(method, path, token=token, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["detail"] == f"machine {target} not found"
    seen = await standins.seen(machine_id)
    assert (seen.configured, seen.migrations) == ([], [])


async def test_a_destroyed_or_cpu_machine_takes_no_standby(api: Api) -> None:
    destroyed = add_machine(api, status="destroyed")
    for method, suffix, body in (
        ("PUT", "standby", {"enabled": True}),
        ("DELETE", "standby", None),
        ("POST", "migrate", {"to": "cpu"}),
    ):
        response = await api.call(method, f"/api/v1/machines/{destroyed}/{suffix}", json=body)
        assert response.status_code == 409, response.text
        assert response.json()["detail"] == "machine is destroyed"
    shown = await api.call("GET", f"/api/v1/machines/{destroyed}/standby")
    assert shown.status_code == 200 and shown.json()["state"] == "destroyed"
    cpu = add_machine(api, kind="cpu", gpu_name=None, provider="gcp")
    refused_cpu = await api.call("PUT", f"/api/v1/machines/{cpu}/standby", json={"enabled": True})
    assert refused_cpu.status_code == 409 and "a cpu machine has no standby" in refused_cpu.text


async def test_configure_goes_to_the_workflow_partially_over_the_projection(
    api: Api, standins: StandIns
) -> None:
    await api.call("PUT", SETTINGS, json={"zone": "europe-west1-b", "disk_gb": 50})
    machine_id = await machine_with_stand_in(api, standins)
    path = f"/api/v1/machines/{machine_id}/standby"
    never = (await api.call("GET", path)).json()
    assert never["enabled"] is False and never["instance"] is None and never["lag_seconds"] is None
    assert never["config"]["zone"] == "europe-west1-b"  # the owner's defaults, disabled

    answer = await api.call(
        "PUT", path, json={"enabled": True, "sync_interval_seconds": 10}, params={"reason": "rpo"}
    )
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    expected = {**DEFAULTS, "zone": "europe-west1-b", "disk_gb": 50, "sync_interval_seconds": 10}
    assert shown["config"] == {**expected, "enabled": True}
    assert shown["instance"] == {
        "instance_id": "9001",
        "provider": "gcp",
        "zone": "europe-west1-b",
        "machine_type": "e2-medium",
        "price_per_hour": 0.0335,
    }
    assert shown["ssh"] == "ssh -p 2201 dumont@127.64.1.2"
    assert shown["ssh_login"] == {
        "host": "127.64.1.2",
        "port": 2201,
        "user": "dumont",
        "command": "ssh -p 2201 dumont@127.64.1.2",
    }
    assert (shown["side"], shown["health"], shown["state"]) == ("gpu", "unknown", "running")
    [sent] = (await standins.seen(machine_id)).configured
    assert sent.reason == "rpo"
    assert sent.config == StandbyConfig(**{**expected, "enabled": True})

    # The outbox projects it; the next PUT changes only what it gives.
    project(api, machine_id, StandbyStatus(config=sent.config, instance=STANDBY_VM))
    await api.call("PUT", path, json={"excludes": ["*.ckpt"]})
    removed = await api.call("DELETE", path)
    assert removed.status_code == 200, removed.text
    assert removed.json()["enabled"] is False and removed.json()["instance"] is None
    _, partial, gone = (await standins.seen(machine_id)).configured
    assert partial.config == replace_config(sent.config, excludes=["*.ckpt"])
    # DELETE keeps the config for a later enable: only `enabled` changes.
    assert gone.config == replace_config(sent.config, enabled=False)


def replace_config(config: StandbyConfig, **changes: Any) -> StandbyConfig:
    return StandbyConfig(**{**vars(config), **changes})


async def test_migrate_waits_or_answers_202_and_refusals_are_409(
    api: Api, standins: StandIns
) -> None:
    machine_id = await machine_with_stand_in(api, standins)
    path = f"/api/v1/machines/{machine_id}/migrate"
    none = await api.call("POST", path, json={"to": "cpu"})
    assert none.status_code == 409 and none.json()["detail"] == NO_STANDBY
    await api.call("PUT", f"/api/v1/machines/{machine_id}/standby", json={"enabled": True})
    moved = await api.call("POST", path, json={"to": "cpu"}, params={"reason": "cheaper"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["id"] == machine_id and moved.json()["status"] == "standby"
    again = await api.call("POST", path, json={"to": "cpu"})
    assert again.status_code == 409 and again.json()["detail"] == ON_STANDBY
    back = await api.call("POST", path, json={"to": "gpu"}, params={"wait": "false"})
    assert back.status_code == 202, back.text
    assert back.json() == {
        "machine_id": machine_id,
        "action": "migrate",
        "status_url": f"/api/v1/machines/{machine_id}",
    }
    assert back.headers["Location"] == f"/api/v1/machines/{machine_id}"
    seen = await standins.seen(machine_id)
    assert [(m.to, m.reason) for m in seen.migrations] == [(Side.CPU, "cheaper"), (Side.GPU, None)]
    assert seen.state == "running"


async def test_the_read_model_shows_the_projection_and_the_agents_figures(api: Api) -> None:
    synced = datetime.now(UTC) - timedelta(seconds=150)
    pushed = synced + timedelta(seconds=60)  # the agent's newer word than the workflow's
    machine_id = add_machine(
        api,
        ssh_host="10.1.1.1",
        ssh_port=22,
        sync_last_success_at=pushed,
        sync_seconds=1.5,
        sync_bytes=2048,
        sync_failures=3,
        sync_error="rsync: connection unexpectedly closed",
    )
    project(
        api,
        machine_id,
        StandbyStatus(
            config=StandbyConfig(enabled=True, sync_interval_seconds=20),
            instance=STANDBY_VM,
            side=Side.CPU,
            reason=StandbyReason.GPU_LOST,
            health=SyncHealth.FAILING,
            last_sync_at=synced,
            sync_error="rsync: connection unexpectedly closed",
            problem="looking for a GPU",
        ),
    )
    shown = (await api.call("GET", f"/api/v1/machines/{machine_id}/standby")).json()
    assert (shown["side"], shown["reason"], shown["health"]) == ("cpu", "gpu_lost", "failing")
    assert shown["config"]["sync_interval_seconds"] == 20
    assert shown["sync_error"] == "rsync: connection unexpectedly closed"
    assert shown["problem"] == "looking for a GPU" and shown["ssh_login"]["user"] == "dumont"
    assert datetime.fromisoformat(shown["last_sync_at"]) == pushed
    assert shown["lag_seconds"] >= 90
    assert shown["agent_sync"] == {
        "last_success_at": shown["last_sync_at"],
        "seconds": 1.5,
        "bytes_sent": 2048,
        "consecutive_failures": 3,
        "error": "rsync: connection unexpectedly closed",
    }
    never = add_machine(api)
    assert (await api.call("GET", f"/api/v1/machines/{never}/standby")).json()["agent_sync"] is None

    # The machine's own answer, and the list, carry the summary.
    machine = (await api.call("GET", f"/api/v1/machines/{machine_id}")).json()
    summary = machine["standby"]
    assert summary["ssh"] == "ssh -p 2201 dumont@127.64.1.2" and summary["side"] == "cpu"
    assert summary["instance"]["instance_id"] == "9001" and summary["lag_seconds"] >= 90
    assert machine["ssh"] == "ssh -p 22 root@10.1.1.1"
    plain = add_machine(api)
    listed = {m["id"]: m["standby"] for m in (await api.call("GET", "/api/v1/machines")).json()}
    assert listed[plain] is None and listed[machine_id] == summary | {
        "lag_seconds": listed[machine_id]["lag_seconds"]
    }


async def start_input(api: Api, machine_id: str) -> MachineInput:
    client = await api.app.state.temporal.client()
    history = await client.get_workflow_handle(machine_workflow_id(machine_id)).fetch_history()
    started = history.events[0]
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    payloads = started.workflow_execution_started_event_attributes.input.payloads
    [decoded] = await client.data_converter.decode(payloads, [MachineInput])
    assert isinstance(decoded, MachineInput)
    return decoded


async def test_a_new_machines_standby_reaches_its_workflow(api: Api) -> None:
    await api.call("PUT", SETTINGS, json={"disk_gb": 30})
    body = {**VALID, "standby": {"sync_interval_seconds": 15, "excludes": ["*.tmp"]}}
    created = await api.call("POST", "/api/v1/machines", json=body)
    assert created.status_code == 201, created.text
    asked = (await start_input(api, created.json()["id"])).standby
    assert asked == StandbyConfig(
        enabled=True, disk_gb=30, sync_interval_seconds=15, excludes=["*.tmp"]
    )
    # No block, auto_standby off: none; on: the defaults.
    plain = (await api.call("POST", "/api/v1/machines", json=VALID)).json()
    assert (await start_input(api, plain["id"])).standby is None
    await api.call("PUT", SETTINGS, json={"auto_standby": True})
    auto = (await api.call("POST", "/api/v1/machines", json=VALID)).json()
    assert (await start_input(api, auto["id"])).standby == StandbyConfig(enabled=True, disk_gb=30)
    # A block saying no wins over auto_standby.
    opted_out = {**VALID, "standby": {"enabled": False}}
    out = (await api.call("POST", "/api/v1/machines", json=opted_out)).json()
    assert (await start_input(api, out["id"])).standby is None


async def test_a_bad_standby_block_creates_nothing(api: Api) -> None:
    before = api.count(Machine)
    for change, field, words in BAD_FIELDS:
        response = await api.call("POST", "/api/v1/machines", json={**VALID, "standby": change})
        assert words in refused(response, "body", "standby", field), (change, response.text)
    cpu = {"provider": "gcp", "kind": "cpu", "image": "debian-12", "standby": {}}
    response = await api.call("POST", "/api/v1/machines", json=cpu)
    assert "a cpu machine has no standby" in refused(response, "body", "standby")
    assert api.count(Machine) == before
