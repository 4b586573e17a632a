"""The running agent (`python -m agent`) with a sync file: its sync thread pushes to a sim
machine, every report carries the sync's block, and a hung sync never holds up a heartbeat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.agent.helpers import eventually
from tests.agent.recording_server import RecordingServer
from tests.agent.sync_helpers import lock_is_held, standby, tree
from tests.agent.test_agent_process import running_agent
from tests.fixtures.sim import SimHandle


async def test_reports_carry_the_sync_and_a_hung_sync_does_not_delay_them(
    sim: SimHandle, recorder: RecordingServer, tmp_path: Path
) -> None:
    (tmp_path / "agent").mkdir()
    async with running_agent(tmp_path / "agent", recorder) as agent:
        await eventually(lambda: len(recorder.reports) >= 2)
        assert "sync" not in recorder.reports[-1]  # no sync file: no sync, no block

        target = await standby(sim, agent.dir)
        source = tmp_path / "workspace"
        source.mkdir()
        (source / "model.pt").write_bytes(b"weights" * 1000)
        target.gate.hold()  # accepts TCP, never answers
        target.write_sync_file(source, interval_seconds=0.5)

        def latest_sync() -> dict[str, Any]:
            return dict(recorder.reports[-1].get("sync") or {})

        await eventually(lambda: target.gate.accepted == 1)
        assert lock_is_held(agent.dir / "sync.lock")
        seen = len(recorder.reports)
        # Reports go on at their 0.1 s cadence while the sync waits for its 10 s timeout.
        await eventually(lambda: len(recorder.reports) >= seen + 20)
        assert target.gate.open_held() == 1 and target.gate.accepted == 1  # still hung
        assert latest_sync() == {
            "last_success_at": None,
            "last_duration_seconds": None,
            "last_bytes_sent": None,
            "consecutive_failures": 0,
            "error": None,
            "target": f"root@127.0.0.1:{target.gate.port}",
        }

        target.gate.forward()  # the next attempt gets through
        await eventually(lambda: latest_sync().get("consecutive_failures") == 1, within=60)
        assert "banner exchange" in latest_sync()["error"]
        assert latest_sync()["last_success_at"] is None
        await eventually(lambda: latest_sync().get("last_success_at") is not None, within=60)
        synced = latest_sync()
        assert synced["consecutive_failures"] == 0 and synced["error"] is None
        assert synced["last_bytes_sent"] > 0 and synced["last_duration_seconds"] >= 0
        assert tree(target.workspace) == tree(source)

        # The loop re-reads the sync file every tick: its removal stops the sync and the block.
        target.sync_file.unlink()
        await eventually(lambda: "sync" not in recorder.reports[-1])
        assert agent.alive()
    status = json.loads((agent.dir / "sync-status.json").read_text())
    assert status["last_success_at"] is not None
