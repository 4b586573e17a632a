"""`/api/instances/{id}/schedule` on the real API and the Temporal dev server: the schedules
it makes are real Temporal Schedules, bad input changes nothing, and another owner's machine
is a missing one."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from temporalio.client import Client, ScheduleDescription
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from core.contracts.schedules import ScheduleKind, schedule_id
from core.db import session_scope
from core.models import Machine
from tests.api.conftest import Api

PATH = "/api/instances/{}/schedule"
SAO_PAULO = {"wake_time": "09:00", "sleep_time": "18:00", "timezone": "America/Sao_Paulo"}


def add_machine(api: Api, owner_id: str, status: str = "running") -> str:
    machine_id = f"vast_{uuid.uuid4().hex[:10]}"
    with session_scope(api.engine) as session:
        session.add(
            Machine(
                id=machine_id,
                owner_id=owner_id,
                gpu_name="RTX 4090",
                image="pytorch/pytorch",
                disk_gb=20,
                status=status,
            )
        )
    return machine_id


def stored(api: Api, machine_id: str) -> tuple[str | None, str | None, str | None]:
    with session_scope(api.engine) as session:
        machine = session.get(Machine, machine_id)
        assert machine is not None
        return machine.wake_time, machine.sleep_time, machine.schedule_timezone


async def describe(client: Client, machine_id: str, kind: ScheduleKind) -> ScheduleDescription:
    return await client.get_schedule_handle(schedule_id(machine_id, kind)).describe()


async def exists(client: Client, machine_id: str, kind: ScheduleKind) -> bool:
    try:
        await describe(client, machine_id, kind)
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
        return False
    return True


def at(description: ScheduleDescription) -> tuple[int, int, str | None]:
    spec = description.schedule.spec
    (calendar,) = spec.calendars
    return calendar.hour[0].start, calendar.minute[0].start, spec.time_zone_name


async def test_put_get_replace_and_delete(api: Api, dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    machine_id = add_machine(api, api.alice_id)
    path = PATH.format(machine_id)

    put = await api.call("PUT", path, json=SAO_PAULO)

    assert put.status_code == 200, put.text
    body = put.json()
    assert {k: body[k] for k in ("success", "instance_id", *SAO_PAULO)} == {
        "success": True,
        "instance_id": machine_id,
        **SAO_PAULO,
    }
    wake = await describe(client, machine_id, ScheduleKind.WAKE)
    sleep = await describe(client, machine_id, ScheduleKind.SLEEP)
    assert at(wake) == (9, 0, "America/Sao_Paulo")
    assert at(sleep) == (18, 0, "America/Sao_Paulo")
    assert wake.schedule.state.note == f"wake machine {machine_id} at 09:00 America/Sao_Paulo"
    assert sleep.schedule.state.note == (
        f"hibernate machine {machine_id} at 18:00 America/Sao_Paulo"
    )
    # The next times are the schedules' own, at those local times.
    assert datetime.fromisoformat(body["next_wake"]) == wake.info.next_action_times[0]
    assert datetime.fromisoformat(body["next_sleep"]) == sleep.info.next_action_times[0]
    assert stored(api, machine_id) == ("09:00", "18:00", "America/Sao_Paulo")

    got = await api.call("GET", path)
    assert got.status_code == 200 and got.json() == body

    # A PUT replaces: new wake time, new zone, no sleep time → the sleep schedule is gone.
    replaced = await api.call("PUT", path, json={"wake_time": "7:30", "timezone": "Europe/Berlin"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["wake_time"] == "07:30"
    assert (replaced.json()["sleep_time"], replaced.json()["next_sleep"]) == (None, None)
    assert at(await describe(client, machine_id, ScheduleKind.WAKE)) == (7, 30, "Europe/Berlin")
    assert not await exists(client, machine_id, ScheduleKind.SLEEP)
    assert stored(api, machine_id) == ("07:30", None, "Europe/Berlin")
    assert (await api.call("GET", path)).json() == replaced.json()

    deleted = await api.call("DELETE", path)
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    assert not await exists(client, machine_id, ScheduleKind.WAKE)
    assert stored(api, machine_id) == (None, None, None)

    again = await api.call("DELETE", path)
    missing = await api.call("GET", path)
    assert again.status_code == missing.status_code == 404
    assert missing.json()["detail"] == f"machine {machine_id} has no schedule"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"wake_time": "09:00", "timezone": "Mars/Olympus"}, "timezone"),
        ({"wake_time": "09:00", "timezone": "../../etc/passwd"}, "timezone"),
        ({"wake_time": "09:00", "timezone": "localtime"}, "timezone"),
        ({"wake_time": "25:00"}, "wake_time"),
        ({"wake_time": "9am"}, "wake_time"),
        ({"sleep_time": "18:60"}, "sleep_time"),
        ({"timezone": "UTC"}, "wake_time, sleep_time or both"),
        ({"wake_time": "09:00", "sleep_time": "9:00"}, "must differ"),
    ],
)
async def test_bad_input_is_422_naming_the_field_and_changes_nothing(
    api: Api, dev_env: WorkflowEnvironment, body: dict[str, str], field: str
) -> None:
    machine_id = add_machine(api, api.alice_id)
    path = PATH.format(machine_id)
    assert (await api.call("PUT", path, json=SAO_PAULO)).status_code == 200
    before = (await api.call("GET", path)).json()

    response = await api.call("PUT", path, json=body)

    assert response.status_code == 422
    assert field in response.json()["message"]
    assert (await api.call("GET", path)).json() == before
    assert stored(api, machine_id) == ("09:00", "18:00", "America/Sao_Paulo")
    assert (await api.call("DELETE", path)).status_code == 200


async def test_another_owners_machine_is_404_and_untouched(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    machine_id = add_machine(api, api.alice_id)
    path = PATH.format(machine_id)
    assert (await api.call("PUT", path, json=SAO_PAULO)).status_code == 200

    for method, body in (("PUT", {"wake_time": "03:00"}), ("GET", None), ("DELETE", None)):
        theirs = await api.call(method, path, token=api.bob, json=body)
        assert theirs.status_code == 404, (method, theirs.text)
        assert theirs.json()["detail"] == f"machine {machine_id} not found"

    assert at(await describe(dev_env.client, machine_id, ScheduleKind.WAKE)) == (
        9,
        0,
        "America/Sao_Paulo",
    )
    assert stored(api, machine_id) == ("09:00", "18:00", "America/Sao_Paulo")
    assert (await api.call("DELETE", path)).status_code == 200


async def test_destroyed_machine_cannot_get_a_schedule(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    machine_id = add_machine(api, api.alice_id, status="destroyed")
    response = await api.call("PUT", PATH.format(machine_id), json=SAO_PAULO)
    assert response.status_code == 409
    assert not await exists(dev_env.client, machine_id, ScheduleKind.WAKE)
