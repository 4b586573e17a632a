"""`dumont serverless ...` against the real API: what needs no worker on the shared server
(refusals, the status of a machine never enabled, the `machines ls` marker), the whole cycle on
the live stack (enable with the key printed once, status, pause and resume followed, rotate-key,
disable)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from core.db import make_engine, session_scope
from core.serverless.keys import hash_endpoint_key
from core.serverless.table import ServerlessEndpoint
from tests.cli.conftest import ApiUser, add_machine, dumont
from tests.cli.test_hibernation_cli_live import cli

KEY = re.compile(r"endpoint key: (dsk_\S+)")


def an_enabled_row(user: ApiUser, machine_id: str) -> None:
    """The endpoint row an enable leaves (this server has no worker to enable through)."""
    engine = make_engine(user.database_url)
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        session.add(
            ServerlessEndpoint(
                machine_id=machine_id,
                owner_id=user.user_id,
                port="8000/tcp",
                keep_alive_paths=["/health"],
                key_hash=hash_endpoint_key("dsk_x"),
                key_prefix="dsk_abcdefgh",
                enabled_at=now,
                updated_at=now,
            )
        )
    engine.dispose()


def test_refusals_are_the_apis_words(api_user: ApiUser) -> None:
    env = api_user.env()
    unknown = dumont("serverless", "enable", "m-000000000000", env=env)
    assert unknown.exit_code == 1 and "machine m-000000000000 not found" in unknown.stderr
    machine_id = add_machine(api_user, declared_ports=["8000/tcp", "8001/tcp"])
    which = dumont("serverless", "enable", machine_id, env=env)
    assert which.exit_code == 1 and "several TCP ports" in which.stderr
    short = dumont("serverless", "enable", machine_id, "--idle-timeout", "2", env=env)
    assert short.exit_code == 1
    assert "idle_timeout_minutes: Input should be greater than or equal to 5" in short.stderr
    paused = dumont("serverless", "pause", machine_id, env=env)
    assert paused.exit_code == 1 and "serverless mode is off" in paused.stderr


def test_status_and_the_marker_in_machines_ls(api_user: ApiUser) -> None:
    env = api_user.env()
    plain = add_machine(api_user, declared_ports=["8000/tcp"])
    never = dumont("serverless", "status", plain, env=env)
    assert never.exit_code == 0, never.output
    assert "off" in never.stdout and f"dumont serverless enable {plain}" in never.stdout
    machine_id = add_machine(api_user, declared_ports=["8000/tcp"])
    an_enabled_row(api_user, machine_id)
    shown = dumont("serverless", "status", machine_id, env=env)
    assert shown.exit_code == 0, shown.output
    for words in (
        f"/serverless/{machine_id}/",
        "15 min",
        "/health",
        "8000/tcp",
        "dsk_abcdefgh…",
        "mean -, p95 - (0 cold starts)",
    ):
        assert words in shown.stdout, (words, shown.stdout)
    as_json = json.loads(dumont("serverless", "status", machine_id, "--json", env=env).stdout)
    assert as_json["enabled"] is True and as_json["config"]["port"] == "8000/tcp"
    listed = dumont("machines", "ls", env=env).stdout.splitlines()
    assert "serverless" in next(line for line in listed if machine_id in line)
    assert "serverless" not in next(line for line in listed if plain in line)


async def test_the_whole_cycle_from_the_cli(stack_user: ApiUser) -> None:
    user = stack_user
    created = await cli(
        user, "machines", "create", "--gpu", "RTX 3090", "--image", "ubuntu:22.04",
        "--disk", "20", "--port", "8000", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    machine_id = json.loads(created.stdout)["id"]

    enabled = await cli(
        user, "serverless", "enable", machine_id, "--idle-timeout", "10",
        "--keep-alive", "/health", "--keep-alive", "/ping", "--max-pending", "20",
    )  # fmt: skip
    assert enabled.exit_code == 0, enabled.output
    assert f"Serverless mode on for {machine_id}" in enabled.stdout
    assert "10 min without requests" in enabled.stdout
    assert f"{user.url}/serverless/{machine_id}/" in enabled.stdout
    found = KEY.search(enabled.stdout)
    assert found is not None and "Keep this key" in enabled.stdout
    key = found.group(1)

    again = await cli(user, "serverless", "enable", machine_id, "--idle-timeout", "20")
    assert again.exit_code == 0, again.output
    assert key not in again.stdout and f"unchanged ({key[:12]}…)" in again.stdout

    paused = await cli(user, "serverless", "pause", machine_id)
    assert paused.exit_code == 0, paused.output
    assert "pausing" in paused.stdout  # its events, as they happened
    assert f"{machine_id} is paused" in paused.stdout and "resumes it" in paused.stdout
    listed = await cli(user, "machines", "ls")
    line = next(line for line in listed.stdout.splitlines() if machine_id in line)
    assert "paused" in line and "serverless" in line

    status = await cli(user, "serverless", "status", machine_id)
    assert status.exit_code == 0, status.output
    assert "paused" in status.stdout and "20 min" in status.stdout and "cycles" in status.stdout

    resumed = await cli(user, "serverless", "resume", machine_id)
    assert resumed.exit_code == 0, resumed.output
    assert f"{machine_id} is running" in resumed.stdout
    after = json.loads((await cli(user, "serverless", "status", machine_id, "--json")).stdout)
    assert after["cycles"] == 1 and after["paused_seconds"] > 0

    rotated = await cli(user, "serverless", "rotate-key", machine_id)
    assert rotated.exit_code == 0, rotated.output
    new = KEY.search(rotated.stdout)
    assert new is not None and new.group(1) != key and "Keep this key" in rotated.stdout

    off = await cli(user, "serverless", "disable", machine_id)
    assert off.exit_code == 0 and f"Serverless mode off for {machine_id}" in off.stdout
    refused = await cli(user, "serverless", "pause", machine_id)
    assert refused.exit_code == 1 and "enable it first" in refused.stderr
