"""When the cold start goes wrong the held requests are answered, never left hanging: a resume
that fails (the host taken and the new instance never boots) or a service that does not get
ready within `resume_timeout_seconds` gives each held request 503 with Retry-After and why,
and the machine's state and events say so; a host taken while paused is only a detour: the
held request is answered from a new host."""

from __future__ import annotations

import httpx

from core.contracts.states import MachineState
from tests.gateway.stack import Stack
from tests.gateway.test_cold_start import cold_starts

S = MachineState


async def test_a_failed_resume_answers_503_and_the_machine_says_why(stack: Stack) -> None:
    machine = await stack.serverless_machine()
    await stack.pause(machine)
    await stack.sim.admin.take_host(int(machine.instance_id))
    await stack.sim.admin.fail_next_create(1)  # the new instance never boots either
    try:
        async with httpx.AsyncClient(timeout=120, headers=machine.auth()) as http:
            failed = await http.get(f"{machine.url}/infer")
            assert failed.status_code == 503, failed.text
            assert int(failed.headers["retry-after"]) > 0
            detail = failed.json()["detail"]
            assert "on its host" in detail and "on a new host" in detail, detail
            paused = await stack.until_state(machine.id, S.PAUSED)
            assert "resume failed" in (paused.reason or "")
            assert "resume_failed" in stack.event_types(machine.id)
            assert [row.outcome for row in await cold_starts(stack, machine)] == ["failed"]

            # The host back: the next request resumes it.
            await stack.sim.admin.return_host(int(machine.instance_id))
            again = await http.get(f"{machine.url}/infer")
            assert again.status_code == 200 and again.headers["x-dumont-cold-start"] == "true"
    finally:
        await stack.sim.admin.clear_faults()
    await stack.destroy(machine)


async def test_past_the_resume_timeout_503_and_the_events_say_why(stack: Stack) -> None:
    machine = await stack.serverless_machine(
        readiness_path="/never-ready", resume_timeout_seconds=3
    )
    await stack.pause(machine)
    async with httpx.AsyncClient(timeout=120, headers=machine.auth()) as http:
        late = await http.get(f"{machine.url}/infer")
    assert late.status_code == 503, late.text
    assert int(late.headers["retry-after"]) > 0
    assert late.json()["detail"] == "the service did not answer /never-ready within 3 s"
    [row] = await cold_starts(stack, machine)
    assert (row.outcome, row.held) == ("timed_out", 1) and row.resume_ms is not None
    event = await stack.until_event(machine.id, "cold_start_failed")
    assert event.reason == "1 held request(s) answered 503: " + late.json()["detail"]
    await stack.destroy(machine)


async def test_a_host_taken_while_paused_answers_from_a_new_host(stack: Stack) -> None:
    machine = await stack.serverless_machine()
    await stack.pause(machine)
    await stack.sim.admin.take_host(int(machine.instance_id))
    async with httpx.AsyncClient(timeout=120, headers=machine.auth()) as http:
        answer = await http.get(f"{machine.url}/infer")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-dumont-cold-start"] == "true"
    assert answer.json()["instance"] not in ("", machine.instance_id)  # the new host's
    how = [e.reason or "" for e in stack.events(machine.id) if e.event_type == "resumed"]
    assert "on a new host" in how[-1]
    await stack.destroy(machine)
