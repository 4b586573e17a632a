"""Creating a machine that runs a service (ports, env, on-start): what is accepted and shown,
what is refused (422 naming the field, nothing created), and that env values go to the machine's
workflow only: never to the database nor into any answer. On SQLite and PostgreSQL; real
Temporal, no worker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import select

from core.contracts import machine_workflow_id
from core.contracts.service import MAX_ON_START_BYTES, MAX_PORTS
from core.contracts.workflow import MachineInput
from core.db import session_scope
from core.models import Event, Machine
from tests.api.conftest import Api
from tests.api.test_bad_input import refused
from tests.api.test_hibernation_routes import add_machine
from tests.api.test_machines_input import VALID

SECRET = "sk-live-5f3c9a7e21d04b6b"
SERVICE = {
    "ports": [8000, "8001/TCP", " 53/udp"],
    "env": {"MODEL": "llama-3-8b", "HF_TOKEN": SECRET},
    "on_start": "python3 -m http.server 8000",
}

BAD: list[tuple[dict[str, Any], tuple[str | int, ...], str]] = [
    ({"ports": ["8000/sctp"]}, ("body", "ports"), "ports[0]: unknown protocol 'sctp'"),
    ({"ports": ["http"]}, ("body", "ports"), "ports[0]: a port is a number (8000)"),
    ({"ports": [8000, "8000:8000"]}, ("body", "ports"), "ports[1]: a port is a number"),
    ({"ports": [22]}, ("body", "ports"), "ports[0]: port 22 is Dumont's SSH port"),
    ({"ports": ["22/tcp"]}, ("body", "ports"), "port 22 is Dumont's SSH port"),
    ({"ports": [0]}, ("body", "ports"), "a port is a number from 1 to 65535"),
    ({"ports": [65536]}, ("body", "ports"), "a port is a number from 1 to 65535"),
    ({"ports": [True]}, ("body", "ports"), "ports[0]: a port is a number"),
    ({"ports": [8000.5]}, ("body", "ports"), "ports[0]: a port is a number"),
    ({"ports": [8000, "8000/tcp"]}, ("body", "ports"), "port 8000/tcp is declared twice"),
    ({"ports": list(range(1000, 1001 + MAX_PORTS))}, ("body", "ports"), "at most 64"),
    ({"ports": "8000"}, ("body", "ports"), "valid list"),
    ({"env": {"1ST": "x"}}, ("body", "env"), "'1ST' is not a usable variable name"),
    ({"env": {"MY-VAR": "x"}}, ("body", "env"), "'MY-VAR' is not a usable variable name"),
    ({"env": {"-p 22:22": "1"}}, ("body", "env"), "not a usable variable name"),
    ({"env": {"DUMONT_API_URL": "x"}}, ("body", "env"), "set by Dumont or the provider"),
    ({"env": {"VAST_TCP_PORT_8000": "1"}}, ("body", "env"), "set by Dumont or the provider"),
    ({"env": {"PATH": "/opt/bin"}}, ("body", "env"), "set by Dumont or the provider"),
    ({"env": {"TOKEN": SECRET * 20}}, ("body", "env"), "TOKEN=...: at most 256 characters"),
    ({"env": {"TOKEN": SECRET + "\x00"}}, ("body", "env"), "value of TOKEN contains a NUL"),
    (
        {"env": {f"V{i}": "x" * 250 for i in range(130)}},
        ("body", "env"),
        "at most 30720 characters of variables in all",
    ),
    ({"env": {"N": 7}}, ("body", "env", "N"), "valid string"),
    ({"env": ["A=b"]}, ("body", "env"), "valid dictionary"),
    ({"on_start": ""}, ("body", "on_start"), "at least 1 character"),
    ({"on_start": "   "}, ("body", "on_start"), "the on-start command is blank"),
    (
        {"on_start": "x" * (MAX_ON_START_BYTES + 1)},
        ("body", "on_start"),
        "at most 4096 characters",
    ),
    ({"on_start": "é" * 2049}, ("body", "on_start"), "at most 4096 bytes (UTF-8), got 4098"),
    ({"on_start": "echo \x00"}, ("body", "on_start"), "may not contain a NUL character"),
]


@pytest.mark.parametrize(
    ("change", "loc", "why"), BAD, ids=[f"{b[1][1]}-{i}" for i, b in enumerate(BAD)]
)
async def test_bad_service_input_is_422_naming_the_field_and_creates_nothing(
    api_any_db: Api, change: dict[str, Any], loc: tuple[str | int, ...], why: str
) -> None:
    api = api_any_db
    response = await api.call("POST", "/api/v1/machines", json={**VALID, **SERVICE, **change})
    assert why in refused(response, *loc)
    assert SECRET not in response.text  # a refusal never repeats a value back
    assert (api.count(Machine), api.count(Event)) == (0, 0)


async def test_a_refused_service_starts_no_workflow(api: Api) -> None:
    client = await api.app.state.temporal.client()
    for change in ({"ports": [22]}, {"env": {"VAST_X": "1"}}, {"on_start": " "}):
        bad = await api.call("POST", "/api/v1/machines", json={**VALID, **change})
        assert bad.status_code == 422
    good = (await api.call("POST", "/api/v1/machines", json={**VALID, **SERVICE})).json()
    query = f"MachineOwner = '{api.alice_id}'"
    async with asyncio.timeout(30):  # visibility lags the start a little
        while True:
            found = [wf.id async for wf in client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.1)
    assert found == [machine_workflow_id(good["id"])]


async def test_a_service_is_shown_as_declared_and_env_values_reach_only_the_workflow(
    api_any_db: Api,
) -> None:
    api = api_any_db
    created = await api.call("POST", "/api/v1/machines", json={**VALID, **SERVICE})
    assert created.status_code == 201, created.text
    machine = created.json()
    # Normalised; no address until the instance publishes one.
    assert machine["ports"] == {"8000/tcp": None, "8001/tcp": None, "53/udp": None}
    assert machine["env_names"] == ["MODEL", "HF_TOKEN"]
    assert machine["on_start"] == "python3 -m http.server 8000"
    url = f"/api/v1/machines/{machine['id']}"
    answers = [
        created,
        await api.call("GET", url),
        await api.call("GET", "/api/v1/machines"),
        await api.call("GET", f"{url}/events"),
    ]
    assert all(a.status_code == 200 or a is created for a in answers)
    assert all(SECRET not in a.text and "llama-3-8b" not in a.text for a in answers)
    with session_scope(api.engine) as session:
        rows: list[Any] = [session.get(Machine, machine["id"])]
        rows += session.exec(select(Event).where(Event.machine_id == machine["id"])).all()
        stored = " ".join(str(row.model_dump()) for row in rows)
    assert SECRET not in stored and "HF_TOKEN" in stored
    # The workflow has them, for the provider and the on-start.
    client = await api.app.state.temporal.client()
    history = await client.get_workflow_handle(machine_workflow_id(machine["id"])).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (given,) = await client.data_converter.decode(started.input.payloads, [MachineInput])
    assert given.spec.env == SERVICE["env"]
    assert (given.spec.ports, given.spec.on_start) == (
        ["8000/tcp", "8001/tcp", "53/udp"],
        SERVICE["on_start"],
    )


async def test_published_addresses_show_while_the_machine_is_up(api: Api) -> None:
    service: dict[str, Any] = {
        "declared_ports": ["8000/tcp", "53/udp"],
        "ports": {"8000/tcp": "203.0.113.7:41234"},
    }
    running = add_machine(api, None, **service)
    stopped = add_machine(api, None, **{**service, "status": "stopped"})
    plain = add_machine(api)

    def shown(machine_id: str) -> Any:
        return next(m for m in listed if m["id"] == machine_id)

    listed = (await api.call("GET", "/api/v1/machines")).json()
    assert shown(running)["ports"] == {"8000/tcp": "203.0.113.7:41234", "53/udp": None}
    # A stopped instance answers on nothing; its next start may publish other ports.
    assert shown(stopped)["ports"] == {"8000/tcp": None, "53/udp": None}
    assert (shown(plain)["ports"], shown(plain)["env_names"], shown(plain)["on_start"]) == (
        {},
        [],
        None,
    )
    one = (await api.call("GET", f"/api/v1/machines/{running}")).json()
    assert one["ports"] == shown(running)["ports"]
