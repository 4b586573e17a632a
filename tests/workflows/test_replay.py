"""Every recorded history replays against today's workflow code: a change that would break a
machine's months-long run in flight fails here, not in production. See CONTRIBUTING.md."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.machine import MachineWorkflow
from workflows.monitor import FleetMonitorWorkflow
from workflows.schedule_trigger import ScheduleTriggerWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_of_a_patch_take_its_branch() -> None:
    """A history tagged `name.<patch>.json` was recorded with the patch in effect: its marker
    is there, so replaying it exercises the new branch, not the old one again."""
    for path in HISTORIES:
        parts = path.stem.split(".")
        if len(parts) < 2 or parts[1].startswith("run"):
            continue
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        patches = [
            json.loads(
                event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
            )
            for event in history.events
            if event.HasField("marker_recorded_event_attributes")
            # Local activities leave markers too; only patches carry patch data.
            and "patch-data" in event.marker_recorded_event_attributes.details
        ]
        assert parts[1] in [p["id"] for p in patches], f"{path.name} has no {parts[1]} marker"


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
