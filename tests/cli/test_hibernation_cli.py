"""`dumont machines config | hibernate | wake | events | ls` against the real API (uvicorn,
SQLite, Temporal dev server; no worker: what needs the machine's workflow to act is in
test_hibernation_cli_live.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.contracts import machine_workflow_id
from core.contracts.activities import ActivityName
from core.db import make_engine, session_scope
from core.models import Event
from dumont.client import DumontClient
from dumont.commands.hibernation import HIBERNATE, WAKE, Operation, follow
from dumont.config import ClientConfig
from tests.api.test_hibernation_progress import HeldOperation, StandIn
from tests.cli.conftest import ApiUser, add_machine, dumont


def _row(output: str, machine_id: str) -> str:
    return next(line for line in output.splitlines() if machine_id in line)


def test_config_without_options_shows_the_settings(api_user: ApiUser) -> None:
    machine_id = add_machine(
        api_user,
        pause_after_minutes=15,
        gpu_usage_threshold=7.5,
        pre_hibernate_command="python save_checkpoint.py",
        pre_hibernate_on_failure="continue",
    )
    shown = dumont("machines", "config", machine_id, env=api_user.env())
    as_json = dumont("machines", "config", machine_id, "--json", env=api_user.env())

    assert shown.exit_code == 0, shown.output
    assert _row(shown.stdout, "auto-hibernation").split() == ["auto-hibernation", "on"]
    assert "15 min idle" in shown.stdout and "7.5%" in shown.stdout
    assert "python save_checkpoint.py" in shown.stdout and "continue" in shown.stdout
    config = json.loads(as_json.stdout)
    assert config["auto_hibernation"]["pause_after_minutes"] == 15
    assert config["pre_hibernate"] == {
        "command": "python save_checkpoint.py",
        "timeout_seconds": 300,
        "on_failure": "continue",
    }


def test_bad_config_prints_the_servers_message_and_changes_nothing(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)
    for args, words in [
        (("--threshold", "150"), "gpu_usage_threshold: Input should be less than or equal to 100"),
        (("--pause-after", "0"), "pause_after_minutes: Input should be greater than or equal to 1"),
        (("--on-hook-failure", "retry"), "pre_hibernate_on_failure"),
        (("--pre-hibernate-timeout", "0"), "pre_hibernate_timeout_seconds"),
    ]:
        result = dumont("machines", "config", machine_id, *args, env=api_user.env())
        assert result.exit_code == 1, (args, result.output)
        assert words in result.stderr and "Traceback" not in result.output
    after = json.loads(
        dumont("machines", "config", machine_id, "--json", env=api_user.env()).stdout
    )
    assert after["auto_hibernation"] == {
        "enabled": True,
        "pause_after_minutes": 3,
        "delete_after_minutes": 30,
        "gpu_usage_threshold": 5.0,
    }


def test_hibernate_and_wake_say_why_they_cannot(api_user: ApiUser) -> None:
    destroyed = add_machine(api_user, status="destroyed")
    hibernated = add_machine(api_user, status="hibernated")

    gone = dumont("machines", "hibernate", destroyed, env=api_user.env())
    bad_region = dumont("machines", "wake", hibernated, "--region", "Mars", env=api_user.env())
    bad_price = dumont("machines", "wake", hibernated, "--max-price", "0", env=api_user.env())
    missing = dumont("machines", "wake", "vast_nope", env=api_user.env())

    assert gone.exit_code == 1 and "machine is destroyed" in gone.stderr
    assert bad_region.exit_code == 1 and "unknown region 'Mars'" in bad_region.stderr
    assert bad_price.exit_code == 1 and "max_price: Input should be greater than 0" in (
        bad_price.stderr
    )
    assert missing.exit_code == 1 and "machine vast_nope not found" in missing.stderr


def test_ls_shows_what_hibernation_saved(api_user: ApiUser) -> None:
    saver = add_machine(
        api_user,
        status="hibernated",
        hibernated_seconds=10 * 3600,
        hibernated_cost_avoided=4.25,
    )
    fresh = add_machine(api_user)

    listed = dumont("machines", "ls", env=api_user.env())
    as_json = json.loads(dumont("machines", "ls", "--json", env=api_user.env()).stdout)

    assert listed.exit_code == 0, listed.output
    assert "SAVINGS" in listed.stdout
    assert "$4.25" in _row(listed.stdout, saver)
    assert "$4.25" not in _row(listed.stdout, fresh)
    assert {m["id"]: m["savings_usd"] for m in as_json} == {saver: 4.25, fresh: 0.0}


EVENTS: list[tuple[str, dict[str, Any], str | None]] = [
    ("idle", {"gpu_utilization": 2.0}, None),
    ("hibernating", {"gpu_utilization": 2.0}, "idle for 3 minutes"),
    ("hibernated", {"snapshot_id": "snap-abc"}, None),
]


def test_events_show_the_snapshot_and_gpu_reading(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user, status="hibernated")
    start = datetime.now(UTC) - timedelta(minutes=10)
    engine = make_engine(api_user.database_url)
    with session_scope(engine) as session:
        for n, (kind, data, reason) in enumerate(EVENTS):
            session.add(
                Event(
                    machine_id=machine_id,
                    owner_id=api_user.user_id,
                    event_type=kind,
                    state=kind,
                    reason=reason,
                    data=data,
                    timestamp=start + timedelta(minutes=n),
                )
            )
    engine.dispose()

    result = dumont("machines", "events", machine_id, "--limit", "2", env=api_user.env())

    assert result.exit_code == 0, result.output
    header, _rule, *rows = [line for line in result.stdout.splitlines() if line.strip()]
    assert "DETAIL" in header and len(rows) == 2  # the latest two, oldest first
    assert "hibernating" in rows[0] and "gpu 2%" in rows[0] and "idle for 3 minutes" in rows[0]
    assert "hibernated" in rows[1] and "snapshot snap-abc" in rows[1]


@pytest.mark.parametrize(
    ("operation", "activity_name", "final", "shown"),
    [
        (HIBERNATE, ActivityName.SNAPSHOT_WORKSPACE, "hibernated", ("scanned 12", "5.0/5.0 MB")),
        (WAKE, ActivityName.RESTORE_WORKSPACE, "running", ("restored 12", "3.0/3.0 MB")),
    ],
)
async def test_the_progress_bars_show_the_bytes_of_the_operation(
    api_user: ApiUser,
    dev_env: WorkflowEnvironment,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    operation: Operation,
    activity_name: str,
    final: str,
    shown: tuple[str, str],
) -> None:
    """The operation still holds its last heartbeat when the machine reaches its end state,
    so the one poll the CLI needs sees both (see tests/api/test_hibernation_progress.py)."""
    machine_id = add_machine(api_user, status=final)
    held = HeldOperation()
    queue = f"cli-progress-{uuid.uuid4().hex[:8]}"
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
        config = ClientConfig(api_url=api_user.url, token=api_user.token, dev_env=tmp_path)
        with DumontClient(config) as client:
            async with asyncio.timeout(30):  # until the heartbeat reached the server
                while True:
                    report = await asyncio.to_thread(client.machine_progress, machine_id)
                    if report["phase"] is not None:
                        break
                    await asyncio.sleep(0.1)
            await asyncio.to_thread(follow, client, machine_id, operation, 0, 60)
        held.released.set()
        await handle.result()
    out = capsys.readouterr().out
    bar = next(line for line in out.splitlines() if shown[0] in line)
    assert shown[1] in bar, out
    if operation is HIBERNATE:
        assert "2.0/2.0 MB" in next(line for line in out.splitlines() if "uploaded" in line)
