"""The machine workflow hears of transitions only (online↔offline, busy↔idle), never of every
heartbeat. Counted in the workflow's history on the real Temporal dev server."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.contracts import machine_workflow_id
from core.contracts.agent import AgentReport
from tests.ingest.conftest import AgentApi
from tests.ingest.helpers import iso


async def _listening_workflow(client: Client, machine_id: str) -> WorkflowHandle:
    """A workflow under the machine's id that no worker runs: its history records every signal."""
    return await client.start_workflow(
        "MachineWorkflow",
        id=machine_workflow_id(machine_id),
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
    )


async def _signals(client: Client, handle: WorkflowHandle) -> list[AgentReport]:
    reports = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attributes = event.workflow_execution_signaled_event_attributes
            assert attributes.signal_name == "agent_report"
            [report] = await client.data_converter.decode(attributes.input.payloads, [AgentReport])
            reports.append(report)
    return reports


async def test_only_transitions_are_signalled(
    agent_api: AgentApi, dev_env: WorkflowEnvironment
) -> None:
    a = agent_api
    handle = await _listening_workflow(dev_env.client, a.machine.id)
    busy_pattern = [1.0, 2.0, 80.0, 90.0, 4.9, 3.0, None, None, 0.0]
    for gpu in busy_pattern:
        assert (await a.report(gpu=gpu)).status_code == 200
        a.clock.advance(30)

    told = [
        (r.online, r.gpu_busy, r.gpu_utilization) for r in await _signals(dev_env.client, handle)
    ]
    assert told == [
        (True, False, 1.0),  # came online, idle
        (True, True, 80.0),  # idle → busy
        (True, False, 4.9),  # busy → idle (threshold 5 %)
        (True, None, None),  # unreadable GPU counts as busy
        (True, False, 0.0),  # → idle
    ]

    a.clock.advance(200)  # silent for more than three intervals
    await a.ingest.writer.sweep()
    await a.ingest.writer.sweep()  # a second sweep finds nothing new
    await a.ingest.writer.flush()
    signals = await _signals(dev_env.client, handle)
    assert [r.online for r in signals[5:]] == [False]
    assert a.machine_row().agent_online is False


async def test_typing_in_an_ssh_session_keeps_an_idle_gpu_machine_busy(
    agent_api: AgentApi, dev_env: WorkflowEnvironment
) -> None:
    a = agent_api
    handle = await _listening_workflow(dev_env.client, a.machine.id)
    await a.report(gpu=0.0)
    a.clock.advance(30)
    await a.report(gpu=0.0, last_activity=iso(a.clock() - timedelta(seconds=5)))
    a.clock.advance(30)
    await a.report(gpu=0.0, last_activity=iso(a.clock() - timedelta(seconds=20)))
    a.clock.advance(30)
    typed_at = a.clock() - timedelta(seconds=50)
    await a.report(gpu=0.0, last_activity=iso(typed_at))
    signals = await _signals(dev_env.client, handle)
    assert len(signals) == 3  # online idle, input → busy, input stopped → idle
    assert signals[1].gpu_busy is False and signals[1].last_input_at is not None
    assert signals[2].last_input_at == typed_at


async def test_a_signal_temporal_refused_is_sent_again_with_the_next_report(
    agent_api: AgentApi, dev_env: WorkflowEnvironment
) -> None:
    a = agent_api
    await a.report(gpu=50.0)  # no workflow yet: the signal has nowhere to go
    handle = await _listening_workflow(dev_env.client, a.machine.id)
    a.clock.advance(30)
    await a.report(gpu=50.0)
    assert await _signals(dev_env.client, handle) == []  # no transition, nothing to say
    # A delivery failure is different: the told state is forgotten, so the next report says it.
    original = a.ingest.writer.signal
    failures = []

    async def unreachable(transition: object) -> None:
        failures.append(transition)
        raise RuntimeError("Temporal is down")

    a.ingest.writer.signal = unreachable
    a.clock.advance(30)
    await a.report(gpu=1.0)
    assert len(failures) == 3  # attempts
    a.ingest.writer.signal = original
    a.clock.advance(30)
    await a.report(gpu=1.0)
    assert [(r.online, r.gpu_busy) for r in await _signals(dev_env.client, handle)] == [
        (True, False)
    ]
