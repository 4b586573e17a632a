"""A request to a paused machine is held, not refused: the machine resumes, the service
answers its readiness path, and the request gets the service's own answer, marked as a cold
start. Many at once are one resume and all answered; past the queue's limit the gateway says
503 with Retry-After and the held ones are not disturbed; a client that leaves while held no
longer counts toward the limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlmodel import Session, col, select

from core.contracts.hibernation import ConfigureInput
from core.contracts.states import MachineState
from core.models import ServerlessColdStart
from tests.gateway.stack import WAIT_SECONDS, Machine, Stack

S = MachineState


def recorded(stack: Stack, machine: Machine) -> list[ServerlessColdStart]:
    with Session(stack.engine) as session:
        query = select(ServerlessColdStart).where(ServerlessColdStart.machine_id == machine.id)
        return list(session.exec(query.order_by(col(ServerlessColdStart.id))).all())


async def cold_starts(stack: Stack, machine: Machine, count: int = 1) -> list[ServerlessColdStart]:
    """The machine's cold start rows once `count` are written (after the answers: in the
    background)."""
    for _ in range(WAIT_SECONDS * 10):
        rows = recorded(stack, machine)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(recorded(stack, machine))} cold start rows, never {count}")


async def test_a_request_while_paused_is_held_and_answered_after_the_resume(stack: Stack) -> None:
    machine = await stack.serverless_machine()
    await stack.pause(machine)

    async with httpx.AsyncClient(timeout=120) as http:
        answer = await http.post(
            f"{machine.url}/v1/infer?x=1", headers=machine.auth(), json={"q": 1}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-dumont-cold-start"] == "true"
        assert int(answer.headers["x-dumont-resume-ms"]) > 0
        echo = answer.json()
        assert (echo["method"], echo["path"], echo["body"]) == ("POST", "/v1/infer?x=1", '{"q":1}')
        assert echo["instance"] == machine.instance_id  # the same host, resumed

        warm = await http.get(f"{machine.url}/again", headers=machine.auth())
        assert warm.status_code == 200 and "x-dumont-cold-start" not in warm.headers

    assert (await stack.state(machine.id)).state.is_up()
    [row] = await cold_starts(stack, machine)
    assert (row.outcome, row.held) == ("ok", 1)
    assert row.resume_ms and row.ready_ms is not None and row.total_ms
    assert any("held by gateway" in (e.reason or "") for e in stack.events(machine.id))

    # Paused again before the gateway read it: the stale address refuses, the request waits.
    await stack.pause(machine, gateway_knows=False)
    async with httpx.AsyncClient(timeout=120) as http:
        again = await http.get(f"{machine.url}/after-pause", headers=machine.auth())
    assert again.status_code == 200, again.text
    assert again.headers["x-dumont-cold-start"] == "true"
    await stack.destroy(machine)


async def test_fifty_requests_while_paused_are_all_answered_and_past_the_limit_503(
    stack: Stack,
) -> None:
    machine = await stack.serverless_machine(max_pending_requests=50)
    await stack.pause(machine)
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=machine.auth()) as http:
        # A client that leaves while held frees its place.
        leaving = asyncio.create_task(http.get(f"{machine.url}/leaves"))
        await stack.gateway.holds.until_pending(machine.id, 1)
        leaving.cancel()
        await stack.gateway.holds.until_pending(machine.id, 0)

        sent = [asyncio.create_task(http.get(f"{machine.url}/r/{i}")) for i in range(50)]
        await stack.gateway.holds.until_pending(machine.id, 50)
        full = await http.get(f"{machine.url}/one-too-many")
        assert full.status_code == 503
        assert int(full.headers["retry-after"]) > 0
        assert "max_pending_requests" in full.json()["detail"]

        answers = await asyncio.gather(*sent)
        for i, answer in enumerate(answers):
            assert answer.status_code == 200, answer.text
            assert answer.json()["path"] == f"/r/{i}"
            assert answer.headers["x-dumont-cold-start"] == "true"
        # Each client's next requests, on its own connection, come back in its order.
        for i in range(3):
            again = await http.get(f"{machine.url}/after/{i}")
            assert again.json()["path"] == f"/after/{i}"

    resumes = [e for e in stack.event_types(machine.id) if e == "resumed"]
    assert resumes == ["resumed"]  # fifty requests, one resume
    [row] = await cold_starts(stack, machine)
    assert (row.outcome, row.held) == ("ok", 50)
    await stack.destroy(machine)


async def test_a_via_ssh_endpoint_is_held_and_answered_over_ssh(stack: Stack) -> None:
    machine = await stack.serverless_machine(via_ssh=True)
    await stack.pause(machine)
    async with httpx.AsyncClient(timeout=120, headers=machine.auth()) as http:
        answer = await http.get(f"{machine.url}/over-ssh")
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-dumont-cold-start"] == "true"
        assert answer.json()["path"] == "/over-ssh"
        assert (await http.get(f"{machine.url}/again")).status_code == 200
    await stack.destroy(machine)


async def test_a_request_while_pausing_resumes_the_machine_once_the_pause_is_done(
    stack: Stack,
) -> None:
    machine = await stack.serverless_machine()
    # A pre-pause hook that waits for a file: the pause stays under way until the test says.
    hook = 'while [ ! -e "$HOME/pause-may-go-on" ]; do sleep 0.1; done'
    await stack.machines.configure(machine.id, ConfigureInput(pre_hibernate_command=hook))
    await stack.machines.act(machine.id, "pause", reason="test", wait=False)
    await stack.until_state(machine.id, S.PAUSING)
    await stack.gateway.routes.refresh(machine.id)
    async with httpx.AsyncClient(timeout=120, headers=machine.auth()) as http:
        held = asyncio.create_task(http.get(f"{machine.url}/while-pausing"))
        await stack.gateway.holds.until_pending(machine.id, 1)
        instance = await stack.sim.admin.instance(int(machine.instance_id))
        await asyncio.to_thread((Path(instance["home_path"]) / "pause-may-go-on").touch)
        answer = await held
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-dumont-cold-start"] == "true"
    kinds = stack.event_types(machine.id)
    assert kinds.index("paused") < kinds.index("resuming") < kinds.index("resumed")
    await stack.destroy(machine)
