"""`dumont dev` end to end: the whole stack as child processes, stopped by Ctrl-C, resumed with
its state, and refused cleanly when a port is taken."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from dumont.dev import READY_LINE
from dumont.devenv import read_env_file
from dumont.ports import port_is_free
from tests.cli.conftest import CLEARED_ENV, REPO_ROOT, dumont, free_port

STARTUP_TIMEOUT_S = 60


@dataclass
class DevRun:
    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)

    def wait_for(self, text: str, timeout: float = STARTUP_TIMEOUT_S) -> None:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                message = f"no {text!r} in {timeout} s:\n" + "".join(self.output)
                raise AssertionError(message) from None
            if line is None:
                raise AssertionError(f"dumont dev exited before {text!r}:\n" + "".join(self.output))
            self.output.append(line)
            if text in line:
                return

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=45)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env["COLUMNS"] = "200"
    return env


def start_dev(data_dir: Path, ports: dict[str, int]) -> DevRun:
    options = [f"--{name.replace('_', '-')}={port}" for name, port in ports.items()]
    process = subprocess.Popen(
        [sys.executable, "-m", "dumont", "dev", "--data-dir", str(data_dir), *options],
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = DevRun(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            run.lines.put(line)
        run.lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return run


@pytest.fixture
def stack_ports() -> dict[str, int]:
    return {
        "api_port": free_port(),
        "temporal_port": free_port(),
        "temporal_ui_port": free_port(),
        "temporal_http_port": free_port(),
        "temporal_metrics_port": free_port(),
        "s3_port": free_port(),
        "sim_port": free_port(),
    }


@pytest.fixture
def cleanup() -> Iterator[list[DevRun]]:
    """Whatever a failing test left running is stopped."""
    runs: list[DevRun] = []
    yield runs
    for run in runs:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            run.process.wait(timeout=45)


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of processes whose arguments or environment contain `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                environ = (entry / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in cmdline or text in environ:
                found.append((int(entry.name), cmdline))
    return found


def assert_all_stopped(data_dir: Path, ports: dict[str, int]) -> None:
    assert processes_mentioning(str(data_dir)) == []
    busy = [port for port in ports.values() if not port_is_free("127.0.0.1", port)]
    assert busy == []


def s3_client(env: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=env["DUMONT_S3_ENDPOINT"],
        aws_access_key_id=env["DUMONT_S3_ACCESS_KEY"],
        aws_secret_access_key=env["DUMONT_S3_SECRET_KEY"],
        region_name="auto",
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def vastai_offers(env: dict[str, str]) -> list[dict[str, object]]:
    vastai = Path(sys.executable).parent / "vastai"
    result = subprocess.run(
        [str(vastai), "search", "offers", "--url", env["VAST_URL"],
         "--api-key", env["VAST_API_KEY"], "--raw"],
        capture_output=True, text=True, timeout=30, env=_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    offers: list[dict[str, object]] = json.loads(result.stdout)
    return offers


def reported(api: httpx.Client, machine_id: str, within_s: float = 90) -> bool:
    """Whether the machine's agent got a report through to the API (the first comes right
    after its install)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if api.get(f"/api/v1/machines/{machine_id}").json().get("last_report_at"):
            return True
        time.sleep(0.5)
    return False


def test_dev_starts_everything_stops_on_ctrl_c_and_resumes(
    tmp_path: Path, stack_ports: dict[str, int], cleanup: list[DevRun]
) -> None:
    data_dir = tmp_path / "dumont"
    first = start_dev(data_dir, stack_ports)
    cleanup.append(first)
    first.wait_for(READY_LINE)

    env = read_env_file(data_dir / "dev.env")
    api = httpx.Client(
        base_url=env["DUMONT_API_URL"], headers={"Authorization": f"Bearer {env['DUMONT_TOKEN']}"}
    )
    assert api.get("/api/v1/machines").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{stack_ports['temporal_ui_port']}/").status_code == 200
    buckets = [b["Name"] for b in s3_client(env).list_buckets()["Buckets"]]
    assert buckets == ["dumont"]
    assert len(vastai_offers(env)) > 0
    assert (data_dir / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert (data_dir / "dev.env").stat().st_mode & 0o777 == 0o600
    sourced = subprocess.run(
        ["bash", "-c", f"source {data_dir / 'dev.env'} && echo $DUMONT_TOKEN $VAST_URL"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert sourced.stdout.split() == [env["DUMONT_TOKEN"], env["VAST_URL"]]
    # The CLI finds the API and token in dev.env and follows a machine until it is up.
    created = dumont(
        "machines", "create", "--gpu", "RTX 4090", "--image", "ubuntu", "--disk", "20",
        "--name", "e2e", env={"DUMONT_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "ssh -p" in created.stdout
    [machine] = api.get("/api/v1/machines").json()
    assert machine["status"] == "running" and machine["name"] == "e2e"
    machine_id = machine["id"]
    # Its agent reports to this stack's API, on its non-default port (it once posted to 8000).
    assert reported(api, machine_id), f"no agent report reached the API on {env['DUMONT_API_URL']}"
    offers = dumont("offers", "--gpu", "RTX 4090", "--json", env={"DUMONT_DATA_DIR": str(data_dir)})
    assert {o["gpu_name"] for o in json.loads(offers.stdout)} == {"RTX 4090"}
    stopped = dumont("machines", "stop", machine_id, env={"DUMONT_DATA_DIR": str(data_dir)})
    assert stopped.exit_code == 0 and f"{machine_id}: stopped" in stopped.stdout

    assert first.interrupt() == 0
    assert_all_stopped(data_dir, stack_ports)

    second = start_dev(data_dir, stack_ports)
    cleanup.append(second)
    second.wait_for(READY_LINE)

    assert read_env_file(data_dir / "dev.env") == env  # same token, keys and URLs
    machines = api.get("/api/v1/machines")
    assert machines.status_code == 200
    assert [m["id"] for m in machines.json()] == [machine_id]  # the row survived
    # Its workflow survived too: it takes the next action.
    started = dumont("machines", "start", machine_id, env={"DUMONT_DATA_DIR": str(data_dir)})
    assert started.exit_code == 0 and f"{machine_id}: running" in started.stdout
    removed = dumont("machines", "rm", machine_id, "--yes", env={"DUMONT_DATA_DIR": str(data_dir)})
    assert removed.exit_code == 0 and f"{machine_id}: destroyed" in removed.stdout

    # A second stack on the same ports is refused before it writes or starts anything.
    other_dir = tmp_path / "other"
    refused = subprocess.run(
        [sys.executable, "-m", "dumont", "dev", "--data-dir", str(other_dir),
         *[f"--{k.replace('_', '-')}={v}" for k, v in stack_ports.items()]],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: port {stack_ports['api_port']} is in use (API); set DUMONT_API_PORT or --api-port"
    ]
    assert not other_dir.exists()

    # A child that dies takes the stack down with a report naming it.
    [rclone] = [pid for pid, cmd in processes_mentioning(str(data_dir / "s3")) if "rclone" in cmd]
    os.kill(rclone, signal.SIGKILL)
    second.wait_for("s3 exited with code -9")
    assert second.process.wait(timeout=45) == 1
    assert_all_stopped(data_dir, stack_ports)
