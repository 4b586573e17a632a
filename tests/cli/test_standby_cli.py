"""`dumont standby ...` and `dumont machines migrate` against the real API (uvicorn, real
Temporal). The machine workflow's standby updates are not on `MachineWorkflow` yet (written
apart): a stand-in with the same update names answers them (tests/api/standby_stand_in.py), run
by a worker in this process. `download` copies a real sim machine's workspace over real SSH
with rsync, and resumes a cut copy."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import Result

from core.contracts.machine import InstanceInfo
from core.contracts.standby import (
    Side,
    StandbyConfig,
    StandbyReason,
    StandbyStatus,
    SyncHealth,
)
from core.db import make_engine, session_scope
from core.standby.projection import apply_standby
from tests.api.standby_stand_in import NO_STANDBY, STANDBY_VM, StandIns, stand_ins
from tests.cli.conftest import ApiUser, add_machine, dumont
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import connect, new_key, public, rent


@pytest.fixture
async def standins(dev_env: WorkflowEnvironment) -> AsyncIterator[StandIns]:
    async with stand_ins(dev_env.client) as running:
        yield running


async def run(*args: str, user: ApiUser) -> Result:
    """The CLI in a thread: the stand-in's worker runs on this loop meanwhile."""
    return await asyncio.to_thread(dumont, *args, env=user.env())


def project(user: ApiUser, machine_id: str, status: StandbyStatus) -> None:
    """What the machine workflow's outbox writes after a change of its standby."""
    engine = make_engine(user.database_url)
    with session_scope(engine) as session:
        apply_standby(session, machine_id, status)
    engine.dispose()


async def test_settings_show_and_change(api_user: ApiUser) -> None:
    shown = await run("standby", "settings", user=api_user)
    assert shown.exit_code == 0, shown.output
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert ["auto_standby", "off"] in lines and ["machine_type", "e2-medium"] in lines
    changed = await run(
        "standby", "settings", "--auto", "--disk", "40", "--exclude", "*.tmp",
        "--exclude", "cache/", "--no-spot", "--json", user=api_user,
    )  # fmt: skip
    assert changed.exit_code == 0, changed.output
    saved = json.loads(changed.stdout)
    assert saved["auto_standby"] is True and saved["disk_gb"] == 40 and saved["spot"] is False
    assert saved["excludes"] == ["*.tmp", "cache/"]
    bad = await run("standby", "settings", "--interval", "2", user=api_user)
    assert bad.exit_code == 1
    assert "sync_interval_seconds: must be between 5 and 3600" in bad.stderr
    again = json.loads((await run("standby", "settings", "--json", user=api_user)).stdout)
    assert again == saved  # the refused change changed nothing


async def test_enable_show_migrate_disable(api_user: ApiUser, standins: StandIns) -> None:
    machine_id = add_machine(api_user)
    await standins.start(machine_id)
    refused = await run("machines", "migrate", machine_id, "--to", "cpu", user=api_user)
    assert refused.exit_code == 1 and NO_STANDBY in refused.stderr
    enabled = await run(
        "standby", "enable", machine_id, "--interval", "10", "--zone", "europe-west1-b",
        "--exclude", "*.ckpt", user=api_user,
    )  # fmt: skip
    assert enabled.exit_code == 0, enabled.output
    assert "Standby on" in enabled.stdout and "ssh -p 2201 dumont@127.64.1.2" in enabled.stdout
    [sent] = (await standins.seen(machine_id)).configured
    assert sent.config == StandbyConfig(
        enabled=True, zone="europe-west1-b", sync_interval_seconds=10, excludes=["*.ckpt"]
    )
    bad = await run("standby", "enable", machine_id, "--disk", "5", user=api_user)
    assert bad.exit_code == 1 and "disk_gb: must be between 10 and 65536" in bad.stderr

    moved = await run("machines", "migrate", machine_id, "--to", "cpu", "--json", user=api_user)
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["status"] == "standby"
    back = await run("machines", "migrate", machine_id, "--to", "gpu", "--no-wait", user=api_user)
    assert back.exit_code == 0 and "migrate accepted" in back.stdout
    wrong = await run("machines", "migrate", machine_id, "--to", "tpu", user=api_user)
    assert wrong.exit_code == 1 and "to: Input should be 'cpu' or 'gpu'" in wrong.stderr

    disabled = await run("standby", "disable", machine_id, user=api_user)
    assert disabled.exit_code == 0 and "standby off" in disabled.stdout
    seen = await standins.seen(machine_id)
    assert [m.to for m in seen.migrations] == [Side.CPU, Side.GPU]
    assert seen.configured[-1].config.enabled is False


async def test_show_ls_and_machines_show(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)
    plain = add_machine(api_user)
    project(
        api_user,
        machine_id,
        StandbyStatus(
            config=StandbyConfig(enabled=True),
            instance=STANDBY_VM,
            side=Side.CPU,
            reason=StandbyReason.GPU_LOST,
            health=SyncHealth.FAILING,
            sync_error="rsync: connection unexpectedly closed",
            problem="looking for a GPU",
        ),
    )
    shown = await run("standby", "show", machine_id, user=api_user)
    assert shown.exit_code == 0, shown.output
    for words in ("gcp e2-medium europe-west1-b 9001", "cpu (gpu_lost)", "failing", "looking"):
        assert words in shown.stdout, (words, shown.stdout)
    listed = (await run("machines", "ls", user=api_user)).stdout.splitlines()
    assert "STANDBY" in next(line for line in listed if "STATUS" in line)
    assert "on standby (gpu_lost)" in next(line for line in listed if machine_id in line)
    details = (await run("machines", "show", machine_id, user=api_user)).stdout
    assert "standby ssh" in details and "ssh -p 2201 dumont@127.64.1.2" in details
    assert "looking for a GPU" in details
    assert (
        f"none (`dumont standby enable {plain}`)"
        in (await run("machines", "show", plain, user=api_user)).stdout
    )
    off = await run("standby", "show", plain, user=api_user)
    assert off.exit_code == 0 and f"dumont standby enable {plain}" in off.stdout


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def test_download_copies_and_resumes_over_ssh(
    api_user: ApiUser, sim: SimHandle, tmp_path: Path
) -> None:
    key = new_key()
    identity = tmp_path / "id_ed25519"
    key.write_private_key(str(identity))
    identity.chmod(0o600)
    async with sim.client() as client:
        await client.post("/api/v0/ssh/", json={"ssh_key": public(key)})
        instance_id = await rent(client)
    port = int((await sim.wait_for_status(instance_id, "running"))["ssh_port"])
    async with connect(port, key) as conn:
        await conn.run(
            "mkdir -p /workspace/data/empty && echo hello > /workspace/notes.txt && "
            "head -c 3000000 /dev/urandom > /workspace/data/model.bin",
            check=True,
        )
        remote = (await conn.run("sha256sum /workspace/data/model.bin", check=True)).stdout
    machine_id = add_machine(api_user)
    standby_vm = InstanceInfo(
        **{**vars(STANDBY_VM), "ssh_host": "127.0.0.1", "ssh_port": port, "ssh_user": "root"}
    )
    project(
        api_user, machine_id, StandbyStatus(config=StandbyConfig(enabled=True), instance=standby_vm)
    )
    ssh = f"ssh -i {identity} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no"
    ssh += " -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes"
    target = tmp_path / "copy"
    args: list[Any] = ["standby", "download", machine_id, str(target), "--ssh-command", ssh]
    first = await run(*args, user=api_user)
    assert first.exit_code == 0, first.output
    copied = digest(target)
    assert set(copied) == {"notes.txt", "data/model.bin"} and (target / "data/empty").is_dir()
    assert copied["data/model.bin"] == str(remote).split()[0]
    # A copy cut halfway: the next run appends what is missing and checks the whole file.
    model = target / "data" / "model.bin"
    model.write_bytes(model.read_bytes()[:1_000_000])
    again = await run(*args, user=api_user)
    assert again.exit_code == 0, again.output
    assert digest(target) == copied

    none = add_machine(api_user)
    refused = await run("standby", "download", none, str(tmp_path / "x"), user=api_user)
    assert refused.exit_code == 1 and f"{none} has no standby" in refused.stderr
    pending = add_machine(api_user)
    project(api_user, pending, StandbyStatus(config=StandbyConfig(enabled=True), problem="no VM"))
    waiting = await run("standby", "download", pending, str(tmp_path / "y"), user=api_user)
    assert waiting.exit_code == 1 and "has no address: no VM" in waiting.stderr
