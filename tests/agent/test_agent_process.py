"""`python -m agent` as a real process posting to a real HTTP server that records what it gets."""

from __future__ import annotations

import ast
import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.install import agent_files
from tests.agent.helpers import eventually
from tests.agent.recording_server import RecordingServer
from tests.fixtures.sim import REPO_ROOT

INTERVAL = 0.1


def write_gpu_file(path: Path, utilization: float, used: int = 2048) -> None:
    gpu = {
        "index": 0,
        "name": "RTX 4090",
        "utilization_percent": utilization,
        "memory_used_mb": used,
        "memory_total_mb": 24564,
    }
    path.write_text(json.dumps({"gpus": [gpu, {**gpu, "index": 1}]}))


class AgentProcess:
    def __init__(self, tmp_path: Path, server: RecordingServer, max_buffered: int) -> None:
        self.dir = tmp_path
        self.gpu_file = tmp_path / "gpu.json"
        self.ssh_file = tmp_path / "ssh.json"
        self.log = tmp_path / "agent.log"
        config = AgentConfig(
            machine_id="vast_7",
            api_url=server.url,
            token="dma_secret",
            interval_seconds=INTERVAL,
            workspace=str(tmp_path),
            max_buffered_reports=max_buffered,
        )
        (tmp_path / "config.json").write_text(config.to_json())
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {"DUMONT_SIM_GPU_FILE": str(self.gpu_file), "DUMONT_SIM_SSH_FILE": str(self.ssh_file)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "--config", str(self.dir / "config.json")]
            + ["--log-file", str(self.log)],
            cwd=REPO_ROOT,
            env=env,
            stderr=subprocess.PIPE,
        )

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@asynccontextmanager
async def running_agent(
    tmp_path: Path, server: RecordingServer, max_buffered: int = 2880
) -> AsyncIterator[AgentProcess]:
    agent = AgentProcess(tmp_path, server, max_buffered)
    write_gpu_file(agent.gpu_file, 80.0)
    agent.ssh_file.write_text(json.dumps({"sessions": 0, "last_input_at": None}))
    agent.start()
    try:
        yield agent
    finally:
        assert agent.process is not None
        if agent.alive():
            agent.process.kill()
        agent.process.wait()


def timestamps(reports: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for r in reports]


async def test_reports_carry_what_the_machine_shows(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    async with running_agent(tmp_path, recorder) as agent:
        await eventually(lambda: len(recorder.reports) >= 3)
        request = recorder.received[0]
        assert request.path == "/api/agent/status"
        assert request.authorization == "Bearer dma_secret"
        report = recorder.reports[-1]
        assert report["instance_id"] == "vast_7"
        assert report["interval_seconds"] == 1  # whole seconds for the API, at least 1
        assert report["gpu_metrics"]["utilization_percent"] == 80.0
        assert report["gpu_metrics"]["memory_used_mb"] == 4096
        assert [g["index"] for g in report["gpus"]] == [0, 1]
        assert report["gpu_error"] is None
        assert report["active_users"] == 0 and report["last_activity"] is None
        assert 0 <= report["cpu_percent"] <= 100
        assert 0 < report["memory_used_mb"] <= report["memory_total_mb"]
        assert 0 < report["disk_used_gb"] <= report["disk_total_gb"]
        assert report["net_rx_bytes_per_s"] >= 0

        # The GPU becomes unreadable, a user logs in and types: the next reports say so.
        agent.gpu_file.write_text("{not json")
        agent.ssh_file.write_text(
            json.dumps({"sessions": 1, "last_input_at": "2026-11-22T07:59:45+00:00"})
        )
        await eventually(lambda: recorder.reports[-1]["gpu_metrics"] is None)
        await eventually(lambda: recorder.reports[-1]["active_users"] == 1)
        unknown = recorder.reports[-1]
        assert unknown["gpus"] is None and "sim GPU file" in unknown["gpu_error"]
        assert unknown["last_activity"] == "2026-11-22T07:59:45.000Z"
        assert agent.alive()

        assert agent.process is not None
        agent.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(agent.process.wait, 10) == 0
    assert "agent stopped" in agent.log_text()
    assert timestamps(recorder.reports) == sorted(set(timestamps(recorder.reports)))


async def test_reports_made_while_the_api_is_down_arrive_in_order_when_it_is_back(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    bound = 15
    async with running_agent(tmp_path, recorder, max_buffered=bound) as agent:
        await eventually(lambda: len(recorder.reports) >= 3)
        recorder.stop()
        before = len(recorder.reports)
        # Down long enough to overflow the buffer: the agent says it dropped the oldest.
        await eventually(lambda: "buffer full" in agent.log_text())
        recorder.start()
        await eventually(lambda: len(recorder.received) > before + 1)
        assert agent.alive()

    backlog = next(r for r in recorder.received[before:] if "samples" in r.body)
    assert len(backlog.reports) == bound  # exactly the buffer: the oldest were dropped
    delivered = timestamps(recorder.reports)
    assert delivered == sorted(set(delivered))  # oldest first, none twice


def test_the_agent_is_python_38_syntax() -> None:
    for name, content in agent_files().items():
        if name.endswith(".py"):
            ast.parse(content, filename=name, feature_version=(3, 8))


def test_once_prints_a_report_without_a_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "--once"],
        cwd=REPO_ROOT,
        env={"DUMONT_WORKSPACE": str(tmp_path)},
        capture_output=True,
        check=True,
        timeout=30,
    )
    report = json.loads(result.stdout)
    assert report["gpu_metrics"] is None and report["gpu_error"]  # no GPU here: unknown
    assert report["disk_total_gb"] > 0
    assert 0 <= report["cpu_percent"] <= 100


def test_a_bad_config_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"machine_id": "m", "api_url": "ftp://x", "token": "t"}))
    result = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(path), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert b"api_url" in result.stderr
