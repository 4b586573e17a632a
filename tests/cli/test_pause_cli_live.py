"""`dumont machines pause` and `resume` on the whole stack (the API as uvicorn, a worker with
every activity, the sim, an S3 endpoint): the CLI follows the action with its events, says how
the machine came back, and `ls` shows the states."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import ApiUser
from tests.cli.test_hibernation_cli_live import a_running_machine, cli, ssh


async def test_pause_and_resume_from_the_cli(stack_user: ApiUser, tmp_path: Path) -> None:
    user = stack_user
    machine_id, key = await a_running_machine(user, tmp_path)
    await ssh(user, machine_id, key, "echo 'step 40' > /workspace/notes.txt")

    paused = await cli(user, "machines", "pause", machine_id, "--reason", "coffee")
    assert paused.exit_code == 0, paused.output
    assert f"{machine_id} is paused" in paused.stdout and "pausing" in paused.stdout
    listed = await cli(user, "machines", "ls")
    assert "paused" in next(line for line in listed.stdout.splitlines() if machine_id in line)

    again = await cli(user, "machines", "pause", machine_id)
    assert again.exit_code == 1 and "already paused" in again.stderr

    resumed = await cli(user, "machines", "resume", machine_id)
    assert resumed.exit_code == 0, resumed.output
    assert f"{machine_id} is running" in resumed.stdout
    assert "resumed on its host in" in resumed.stdout and "ssh -p " in resumed.stdout
    assert await ssh(user, machine_id, key, "cat /workspace/notes.txt") == "step 40\n"
    assert (await cli(user, "machines", "rm", machine_id, "--yes")).exit_code == 0
