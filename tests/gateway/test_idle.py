"""What counts as activity: a stream in progress keeps the machine up past its idle timeout
until its last byte; a keep-alive path (a load balancer's health check, without a key) is
answered by the gateway while the machine is paused, never wakes it, and while it runs is
forwarded without keeping it from pausing."""

from __future__ import annotations

import asyncio

import httpx

from core.contracts.serverless import ServerlessInput
from core.contracts.states import MachineState
from tests.gateway.stack import WAIT_SECONDS, Stack

S = MachineState
IDLE_SECONDS = 3


async def test_a_stream_longer_than_the_idle_timeout_keeps_the_machine_up(stack: Stack) -> None:
    machine = await stack.serverless_machine()
    async with httpx.AsyncClient(timeout=60, headers=machine.auth()) as http:
        # Ten seconds of ticks, more than three idle timeouts (and three traffic leases).
        async with http.stream("GET", f"{machine.url}/stream?n=20&every=0.5") as answer:
            ticks = answer.aiter_lines()
            assert await anext(ticks) == "tick 0"
            await stack.machines.serverless_mode(
                machine.id, ServerlessInput(enabled=True, idle_timeout_seconds=IDLE_SECONDS)
            )
            rest = [line async for line in ticks]
        assert rest == [f"tick {i}" for i in range(1, 20)]
        assert (await stack.state(machine.id)).state.is_up()
        assert "pausing" not in stack.event_types(machine.id)

    # Once it ended, the machine pauses after its idle timeout.
    paused = await stack.until_state(machine.id, S.PAUSED)
    assert "serverless: no requests for 3 s" in (paused.reason or "")
    await stack.destroy(machine)


async def test_a_keep_alive_path_neither_wakes_a_paused_machine_nor_keeps_one_up(
    stack: Stack,
) -> None:
    machine = await stack.serverless_machine(keep_alive_paths=("/health", "/ping"))
    await stack.pause(machine)
    async with httpx.AsyncClient(timeout=60) as http:
        for _ in range(3):  # a health check every second, without a key
            answer = await http.get(f"{machine.url}/health")
            assert answer.status_code == 200
            assert answer.json() == {
                "status": "paused",
                "machine_id": machine.id,
                "state": "paused",
            }
            await asyncio.sleep(1)
        assert (await stack.state(machine.id)).state is S.PAUSED
        assert "resuming" not in stack.event_types(machine.id)
        # Only the exact path: anything below it is a request like any other.
        assert (await http.get(f"{machine.url}/health/deep")).status_code == 401

        woken = await http.get(f"{machine.url}/", headers=machine.auth())
        assert woken.headers["x-dumont-cold-start"] == "true"
        await stack.machines.serverless_mode(
            machine.id, ServerlessInput(enabled=True, idle_timeout_seconds=IDLE_SECONDS)
        )
        # Forwarded while it runs (the service's own answer), and it still pauses.
        answers = []
        async with asyncio.timeout(WAIT_SECONDS):
            while (await stack.state(machine.id)).state is not S.PAUSED:
                answers.append((await http.get(f"{machine.url}/ping")).status_code)
                await asyncio.sleep(1)
        assert answers and set(answers) <= {200}
    await stack.destroy(machine)
