"""The standby's price in the API's cost and savings figures (on SQLite and PostgreSQL): a
machine that ran two hours on its GPU and has been on its standby for three since, as the
record activity leaves its rows, shown by every route that shows cost or savings."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.contracts.states import MachineState as S
from tests.api.conftest import Api
from tests.test_savings_standby import (
    GPU_PRICE,
    ON_CPU,
    ON_GPU,
    STANDBY_PRICE,
    STANDBY_VM,
    Outbox,
    created,
    destroyed,
    gpu,
    standby,
)

# The minutes between writing the rows and reading them, in dollars: far less than this.
ROOM = 0.01


async def test_cost_and_savings_of_a_machine_on_its_standby(api_any_db: Api) -> None:
    api = api_any_db
    machine_id = f"vast_{uuid.uuid4().hex[:12]}"
    vm = replace(STANDBY_VM, label=f"dumont-{machine_id}-sb1")
    on_gpu, on_cpu = replace(ON_GPU, instance=vm), replace(ON_CPU, instance=vm)
    box = Outbox(api.engine, machine_id, api.alice_id)
    t0 = datetime.now(UTC) - timedelta(hours=5)
    box.send(box.event(S.STARTING, t0, None), created(vm), standby(on_gpu))
    box.send(created(gpu()), box.event(S.RUNNING, t0, gpu()))
    lost = t0 + timedelta(hours=2)
    box.send(box.event(S.FAILING_OVER, lost, gpu()), destroyed(gpu()))
    box.send(standby(on_cpu), box.event(S.STANDBY, lost, vm))

    shown = (await api.call("GET", f"/api/v1/machines/{machine_id}")).json()
    assert (shown["status"], shown["price_per_hour"]) == ("standby", STANDBY_PRICE)
    assert shown["cost_per_hour_usd"] == pytest.approx(STANDBY_PRICE)
    # Two GPU hours; the standby's record was written just now, so it has cost next to nothing.
    assert shown["cost_usd"] == pytest.approx(2 * GPU_PRICE, abs=ROOM)
    assert shown["savings"]["standby_hours"] == pytest.approx(3, abs=ROOM)
    assert shown["savings_usd"] == pytest.approx(3 * GPU_PRICE, abs=ROOM)
    assert shown["savings"]["net_usd"] == shown["savings_usd"]
    listed = {m["id"]: m for m in (await api.call("GET", "/api/v1/machines")).json()}
    assert listed[machine_id]["cost_per_hour_usd"] == shown["cost_per_hour_usd"]

    sb = (await api.call("GET", f"/api/v1/machines/{machine_id}/standby")).json()
    assert sb["instance"]["price_per_hour"] == STANDBY_PRICE and sb["side"] == "cpu"

    # The seed's shapes keep their keys; the standby's hours count in their figures.
    seed = (await api.call("GET", f"/api/instances/{machine_id}/status")).json()["savings"]
    assert set(seed) == {
        "hibernated_hours", "paused_hours", "cost_avoided_usd", "disk_cost_usd",
        "storage_cost_usd", "net_usd",
    }  # fmt: skip
    assert seed["cost_avoided_usd"] == pytest.approx(3 * GPU_PRICE, abs=ROOM)
    stats = (await api.call("GET", "/api/hibernation/stats")).json()
    assert stats["savings_usd"] == pytest.approx(3 * GPU_PRICE, abs=ROOM)


async def test_running_with_a_standby_costs_both_and_without_one_the_gpu(api_any_db: Api) -> None:
    api = api_any_db
    with_standby, plain = (f"vast_{uuid.uuid4().hex[:12]}" for _ in range(2))
    vm = replace(STANDBY_VM, label=f"dumont-{with_standby}-sb1")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    box = Outbox(api.engine, with_standby, api.alice_id)
    box.send(box.event(S.STARTING, t0, None), created(vm), standby(replace(ON_GPU, instance=vm)))
    box.send(created(gpu()), box.event(S.RUNNING, t0, gpu()))
    other = Outbox(api.engine, plain, api.alice_id)
    other.send(created(gpu("779")), other.event(S.RUNNING, t0, gpu("779")))

    listed = {m["id"]: m for m in (await api.call("GET", "/api/v1/machines")).json()}
    assert listed[with_standby]["cost_per_hour_usd"] == pytest.approx(GPU_PRICE + STANDBY_PRICE)
    assert listed[with_standby]["price_per_hour"] == GPU_PRICE
    assert listed[plain]["cost_per_hour_usd"] == pytest.approx(GPU_PRICE)
    for machine_id in (with_standby, plain):
        assert listed[machine_id]["cost_usd"] == pytest.approx(GPU_PRICE, abs=ROOM)
        assert listed[machine_id]["savings_usd"] == 0
