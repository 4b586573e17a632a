"""Creating an interruptible (bid) vast machine: `interruptible` and `bid_price` travel to the
machine's row, its answer, the spec every later provision asks for and its workflow; a bid that
cannot be is a 422 naming the field, and a refusal writes nothing. Real Temporal, no worker."""

from __future__ import annotations

from typing import Any

import pytest

from api.services.machines import spec_of
from core.contracts import machine_workflow_id
from core.contracts.workflow import MachineInput
from core.db import session_scope
from core.models import Event, Machine
from tests.api.conftest import Api
from tests.api.test_machines_input import VALID


async def started_with(api: Api, machine_id: str) -> MachineInput:
    client = await api.app.state.temporal.client()
    history = await client.get_workflow_handle(machine_workflow_id(machine_id)).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (given,) = await client.data_converter.decode(started.input.payloads, [MachineInput])
    assert isinstance(given, MachineInput)
    return given


async def test_an_interruptible_machine_keeps_its_bid(api_any_db: Api) -> None:
    api = api_any_db
    body = {**VALID, "interruptible": True, "bid_price": 0.35}
    response = await api.call("POST", "/api/v1/machines", json=body)
    assert response.status_code == 201, response.text
    machine = response.json()
    assert (machine["interruptible"], machine["bid_price"]) == (True, 0.35)
    assert (await api.call("GET", f"/api/v1/machines/{machine['id']}")).json() == machine
    with session_scope(api.engine) as session:
        row = session.get(Machine, machine["id"])
        assert row is not None
        spec = spec_of(row)  # what a wake or a new host asks for
    assert (spec.interruptible, spec.bid_price) == (True, 0.35)
    given = await started_with(api, machine["id"])
    assert (given.spec.interruptible, given.spec.bid_price) == (True, 0.35)


async def test_interruptible_without_a_bid_bids_each_offers_minimum(api: Api) -> None:
    response = await api.call("POST", "/api/v1/machines", json={**VALID, "interruptible": True})
    assert response.status_code == 201, response.text
    machine = response.json()
    assert (machine["interruptible"], machine["bid_price"]) == (True, None)
    given = await started_with(api, machine["id"])
    assert (given.spec.interruptible, given.spec.bid_price) == (True, None)


async def test_an_on_demand_machine_shows_no_bid(api: Api) -> None:
    machine = (await api.call("POST", "/api/v1/machines", json=VALID)).json()
    assert (machine["interruptible"], machine["bid_price"]) == (False, None)
    given = await started_with(api, machine["id"])
    assert (given.spec.interruptible, given.spec.bid_price) == (False, None)


GCP = {"provider": "gcp", "kind": "cpu", "image": "debian-12", "disk_gb": 20}

BAD_BIDS: list[tuple[dict[str, Any], str, str]] = [
    ({**VALID, "bid_price": 0.35}, "bid_price", "a bid is only for an interruptible machine"),
    (
        {**VALID, "interruptible": False, "bid_price": 0.35},
        "bid_price",
        "a bid is only for an interruptible machine",
    ),
    ({**VALID, "interruptible": True, "bid_price": 0}, "bid_price", "greater than 0"),
    ({**VALID, "interruptible": True, "bid_price": -1}, "bid_price", "greater than 0"),
    ({**VALID, "interruptible": True, "bid_price": 100.01}, "bid_price", "less than or equal"),
    ({**VALID, "interruptible": True, "bid_price": "cheap"}, "bid_price", "valid number"),
    ({**VALID, "interruptible": "sometimes"}, "interruptible", "valid boolean"),
    (
        {**GCP, "interruptible": True},
        "interruptible",
        "only for provider vast, not gcp (GCP has `spot`)",
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_BIDS)
async def test_a_bid_that_cannot_be_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str, message: str
) -> None:
    response = await api.call("POST", "/api/v1/machines", json=body)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]
    assert response.json()["message"].startswith(f"{field}: "), response.json()
    assert message in response.json()["message"]
    assert (api.count(Machine), api.count(Event)) == (0, 0)


async def test_a_bid_at_the_ceiling_is_taken(api: Api) -> None:
    body = {**VALID, "interruptible": True, "bid_price": 100}
    response = await api.call("POST", "/api/v1/machines", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["bid_price"] == 100
