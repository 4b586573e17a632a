"""`GET /api/v1/machines/{id}/progress` reads the heartbeat of the snapshot or restore in flight.

A real hibernate of a small workspace is over before a poll can see it (the live test checks
only that what it sees is well formed), so here a stand-in workflow under the machine's id runs
an activity of the real name that heartbeats real `SnapshotProgress` details and then holds
until the test lets it go: the API reads them from the Temporal server as it would mid-snapshot.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.contracts import machine_workflow_id
from core.contracts.activities import ActivityName
from core.contracts.snapshots import SnapshotProgress
from tests.api.conftest import Api
from tests.api.test_hibernation_routes import add_machine

PROGRESS = SnapshotProgress(
    snapshot_id="snap-1",
    phase="uploading",
    files=12,
    bytes_scanned=5_000_000,
    bytes_uploaded=2_000_000,
    packs_uploaded=1,
    bytes_downloaded=3_000_000,
)


class HeldOperation:
    """An activity named like the machine's snapshot (or restore) that reports PROGRESS and
    holds until released."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.heartbeating = asyncio.Event()

    async def _hold(self) -> None:
        activity.heartbeat(asdict(PROGRESS))
        self.heartbeating.set()
        while not self.released.is_set():
            await asyncio.sleep(0.1)
            activity.heartbeat(asdict(PROGRESS))

    @activity.defn(name=ActivityName.SNAPSHOT_WORKSPACE)
    async def snapshot(self, _request: str) -> None:
        await self._hold()

    @activity.defn(name=ActivityName.RESTORE_WORKSPACE)
    async def restore(self, _request: str) -> None:
        await self._hold()


@workflow.defn(sandboxed=False)
class StandIn:
    @workflow.run
    async def run(self, activity_name: str) -> None:
        await workflow.execute_activity(
            activity_name,
            "request",
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=30),
        )


@pytest.mark.parametrize(
    ("activity_name", "operation"),
    [(ActivityName.SNAPSHOT_WORKSPACE, "snapshot"), (ActivityName.RESTORE_WORKSPACE, "restore")],
)
async def test_progress_shows_the_heartbeat_of_the_operation_in_flight(
    api: Api, dev_env: WorkflowEnvironment, activity_name: str, operation: str
) -> None:
    state = "hibernating" if operation == "snapshot" else "waking"
    machine_id = add_machine(api, status=state)
    held = HeldOperation()
    queue = f"progress-{uuid.uuid4().hex[:8]}"
    async with Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[StandIn],
        activities=[held.snapshot, held.restore],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await dev_env.client.start_workflow(
            StandIn.run, str(activity_name), id=machine_workflow_id(machine_id), task_queue=queue
        )
        await asyncio.wait_for(held.heartbeating.wait(), 30)
        async with asyncio.timeout(30):
            while True:  # the server has the details once the heartbeat reached it
                body = (await api.call("GET", f"/api/v1/machines/{machine_id}/progress")).json()
                if body["operation"] is not None and body["phase"] is not None:
                    break
                await asyncio.sleep(0.1)
        assert body == {
            "state": state,
            "operation": operation,
            "phase": "uploading",
            "files": 12,
            "bytes_scanned": 5_000_000,
            "bytes_uploaded": 2_000_000,
            "bytes_downloaded": 3_000_000,
        }
        others = await api.call("GET", f"/api/v1/machines/{machine_id}/progress", token=api.bob)
        assert others.status_code == 404
        held.released.set()
        await handle.result()
    done = (await api.call("GET", f"/api/v1/machines/{machine_id}/progress")).json()
    assert (done["operation"], done["phase"]) == (None, None)
