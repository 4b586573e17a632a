"""Every recorded history replays against today's workflow code: a change that would break a
machine's months-long run in flight fails here, not in production. See CONTRIBUTING.md."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.machine import MachineWorkflow
from workflows.monitor import FleetMonitorWorkflow
from workflows.schedule_trigger import ScheduleTriggerWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_workflow_type_has_recorded_histories() -> None:
    names = {path.name for path in HISTORIES}
    for prefix in ("machine_", "fleet_monitor", "schedule_trigger"):
        assert any(name.startswith(prefix) for name in names), f"no history of {prefix}*"


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=[MachineWorkflow, FleetMonitorWorkflow, ScheduleTriggerWorkflow])
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        pytest.fail(f"{path.name} no longer replays: {result.replay_failure}")
