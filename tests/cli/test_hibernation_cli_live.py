"""`dumont machines hibernate` and `wake` on the whole stack: the API (uvicorn), a worker with
every activity, the sim marketplace with SSH sandboxes and an S3 endpoint. The CLI follows the
machine with its progress bars and ends with what the user needs next (the ssh command)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncssh
import httpx
from typer.testing import Result

from tests.api.test_ssh_keys import new_key, public
from tests.cli.conftest import ApiUser, dumont


async def cli(user: ApiUser, *args: str) -> Result:
    """The CLI in a thread: the worker runs on this event loop meanwhile."""
    return await asyncio.to_thread(dumont, *args, env=user.env())


async def ssh(user: ApiUser, machine_id: str, key: asyncssh.SSHKey, command: str) -> str:
    """Run a command on the machine where the API says it is, as its owner."""
    async with httpx.AsyncClient(base_url=user.url) as http:
        response = await http.get(
            f"/api/v1/machines/{machine_id}", headers={"Authorization": f"Bearer {user.token}"}
        )
    machine = response.json()
    async with asyncssh.connect(
        machine["ssh_host"], machine["ssh_port"], username=machine["ssh_user"], client_keys=[key],
        known_hosts=None,
    ) as conn:  # fmt: skip
        return str((await conn.run(command, check=True)).stdout)


async def a_running_machine(user: ApiUser, tmp_path: Path) -> tuple[str, asyncssh.SSHKey]:
    """A machine created from the CLI (which waits until it runs) and the owner's SSH key."""
    key = new_key()
    key_file = tmp_path / "id.pub"
    key_file.write_text(public(key))
    assert (await cli(user, "ssh-keys", "add", str(key_file))).exit_code == 0
    created = await cli(
        user, "machines", "create", "--gpu", "RTX 3090", "--image", "ubuntu:22.04",
        "--disk", "20", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    return json.loads(created.stdout)["id"], key


async def test_hibernate_and_wake_from_the_cli(stack_user: ApiUser, tmp_path: Path) -> None:
    user = stack_user
    machine_id, key = await a_running_machine(user, tmp_path)
    disabled = await cli(user, "machines", "config", machine_id, "--disable", "--pause-after", "9")
    assert disabled.exit_code == 0, disabled.output
    assert "settings changed" in disabled.stdout and "9 min idle" in disabled.stdout
    await ssh(user, machine_id, key, "echo 'half way' > /workspace/notes.txt")

    slept = await cli(user, "machines", "hibernate", machine_id)
    assert slept.exit_code == 0, slept.output
    assert f"{machine_id} is hibernated" in slept.stdout and "instance destroyed" in slept.stdout
    assert "hibernating" in slept.stdout  # its events, as they happened
    listed = await cli(user, "machines", "ls")
    assert "hibernated" in next(line for line in listed.stdout.splitlines() if machine_id in line)
    events = await cli(user, "machines", "events", machine_id)
    assert "snapshot " in events.stdout

    again = await cli(user, "machines", "hibernate", machine_id)
    assert again.exit_code == 1 and "hibernated" in again.stderr

    woke = await cli(user, "machines", "wake", machine_id, "--gpu", "RTX 3090")
    assert woke.exit_code == 0, woke.output
    assert f"{machine_id} is running" in woke.stdout and "ssh -p " in woke.stdout
    assert await ssh(user, machine_id, key, "cat /workspace/notes.txt") == "half way\n"

    as_json = await cli(user, "machines", "hibernate", machine_id, "--json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert body["success"] is True and body["instance_destroyed"] is True
    woke_json = await cli(user, "machines", "wake", machine_id, "--json")
    assert woke_json.exit_code == 0, woke_json.output
    assert json.loads(woke_json.stdout)["instance_id"] == machine_id
    assert (await cli(user, "machines", "rm", machine_id, "--yes")).exit_code == 0
