"""Sandbox machines: real SSH servers, real processes, a workspace that outlives stop/start."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.fixtures.sim import SimHandle, running_sim
from tests.sim.helpers import alive, connect, new_key, public, rent

SIM_INTERPRETER = str(Path(sys.executable).resolve())
# A daemon that leaves the session's process group and stdout, and tells where it is.
DAEMON = "nohup setsid sh -c 'echo $$ > /workspace/daemon.pid; exec sleep 1000' >/dev/null 2>&1 &"


async def _running_machine(sim: SimHandle, key: asyncssh.SSHKey, **body: Any) -> tuple[int, int]:
    async with sim.client() as client:
        await client.post("/api/v0/ssh/", json={"ssh_key": public(key)})
        instance_id = await rent(client, **body)
    running = await sim.wait_for_status(instance_id, "running")
    return instance_id, int(running["ssh_port"])


async def _daemon_pid(conn: asyncssh.SSHClientConnection) -> int:
    await conn.run(DAEMON, check=True)
    for _ in range(200):
        result = await conn.run("cat /workspace/daemon.pid", check=False)
        if result.exit_status == 0 and str(result.stdout).strip():
            return int(str(result.stdout))
        await asyncio.sleep(0.02)
    raise AssertionError("the daemon never wrote its pid")


async def test_exec_with_the_attached_key_and_the_machine_environment(sim: SimHandle) -> None:
    key = new_key()
    instance_id, port = await _running_machine(
        sim, key, env={"FOO": "bar"}, onstart="echo booted > /workspace/onstart.txt"
    )
    async with connect(port, key) as conn:
        result = await conn.run(
            'printf "%s|%s|%s|%s|%s|" "$PWD" "$DUMONT_WORKSPACE" "$FOO" "$CONTAINER_ID" '
            '"$VAST_CONTAINERLABEL"; '
            # onstart runs in the background from boot on; give it time to write.
            "for _ in $(seq 200); do [ -s onstart.txt ] && break; sleep 0.05; done; "
            "cat /workspace/onstart.txt; echo oops >&2; exit 7",
            check=False,
        )
    assert result.exit_status == 7
    assert result.stdout == f"/workspace|/workspace|bar|{instance_id}|C.{instance_id}|booted\n"
    assert result.stderr == "oops\n"
    # Its python3 is a real interpreter (the sim's own), not a version manager's shim.
    async with connect(port, key) as conn:
        found = await conn.run('readlink -f "$(command -v python3)"', check=True)
    assert str(found.stdout).strip() == SIM_INTERPRETER


async def test_unknown_key_is_refused_and_a_key_attached_while_running_is_let_in(
    sim: SimHandle,
) -> None:
    key, stranger = new_key(), new_key()
    instance_id, port = await _running_machine(sim, key)
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(port, stranger):
            pass

    async with sim.client() as client:
        attached = await client.post(
            f"/api/v0/instances/{instance_id}/ssh/", json={"ssh_key": public(stranger)}
        )
        async with connect(port, stranger) as conn:
            assert (await conn.run("echo in", check=True)).stdout == "in\n"
        key_id = attached.json()["key"]["id"]
        await client.delete(f"/api/v0/instances/{instance_id}/ssh/{key_id}/")
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(port, stranger):
            pass


async def test_stop_ends_every_process_and_start_keeps_the_disk(sim: SimHandle) -> None:
    key = new_key()
    instance_id, port = await _running_machine(sim, key)
    async with connect(port, key) as conn:
        await conn.run("echo kept > /workspace/data.txt && echo home > ~/note", check=True)
        pid = await _daemon_pid(conn)
    assert alive(pid)

    async with sim.client() as client:
        await client.put(f"/api/v0/instances/{instance_id}/", json={"state": "stopped"})
        await sim.wait_for_status(instance_id, "stopped")
        assert not alive(pid)
        with pytest.raises(OSError):
            async with connect(port, key):
                pass
        await client.put(f"/api/v0/instances/{instance_id}/", json={"state": "running"})
    running = await sim.wait_for_status(instance_id, "running")

    async with connect(int(running["ssh_port"]), key) as conn:
        result = await conn.run("cat /workspace/data.txt ~/note", check=True)
    assert result.stdout == "kept\nhome\n"


async def test_interactive_shell_gets_a_pty(sim: SimHandle) -> None:
    key = new_key()
    _, port = await _running_machine(sim, key)
    async with connect(port, key) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(100, 30))
        process.stdin.write("tty; stty size; echo sum=$((40+2)); exit 4\n")
        output = await process.stdout.read()
        await process.wait()
    assert process.exit_status == 4
    assert "/dev/pts/" in output
    assert "30 100" in output
    assert "sum=42" in output


async def test_sftp_reads_and_writes_the_workspace(sim: SimHandle) -> None:
    key = new_key()
    instance_id, port = await _running_machine(sim, key)
    async with connect(port, key) as conn:
        async with conn.start_sftp_client() as sftp:
            async with sftp.open("/workspace/model.bin", "wb") as handle:
                await handle.write(b"\x00weights\xff")
            names = await sftp.listdir("/workspace")
            cwd = await sftp.realpath(".")
        result = await conn.run("od -An -c /workspace/model.bin | tr -s ' '", check=True)
    assert "model.bin" in names and cwd == "/workspace"
    assert "w e i g h t s" in str(result.stdout)
    machine = await sim.admin.instance(instance_id)
    on_disk = Path(machine["workspace_path"]) / "model.bin"
    assert await asyncio.to_thread(on_disk.read_bytes) == b"\x00weights\xff"


async def test_destroy_removes_the_machine_and_its_processes(sim: SimHandle) -> None:
    key = new_key()
    instance_id, port = await _running_machine(sim, key)
    machine_dir = Path((await sim.admin.instance(instance_id))["machine_dir"])
    async with connect(port, key) as conn:
        pid = await _daemon_pid(conn)
    assert await asyncio.to_thread(machine_dir.is_dir)

    async with sim.client() as client:
        response = await client.request("DELETE", f"/api/v0/instances/{instance_id}/", json={})
    assert response.json() == {"success": True}
    assert not alive(pid)
    assert not await asyncio.to_thread(machine_dir.exists)
    assert await sim.admin.instances() == []


async def test_spot_interruption_kills_the_machine_and_reports_stopped(sim: SimHandle) -> None:
    key = new_key()
    instance_id, port = await _running_machine(sim, key)
    async with connect(port, key) as conn:
        pid = await _daemon_pid(conn)

    await sim.admin.interrupt(instance_id)
    async with sim.client() as client:
        shown = (await client.get(f"/api/v0/instances/{instance_id}/")).json()["instances"]
    assert not alive(pid)
    assert shown["actual_status"] == "stopped"
    assert shown["cur_state"] == shown["intended_status"] == shown["next_state"] == "stopped"
    with pytest.raises(OSError):
        async with connect(port, key):
            pass


async def test_start_after_the_host_was_taken_stays_scheduling(sim: SimHandle) -> None:
    key = new_key()
    instance_id, _ = await _running_machine(sim, key)
    async with sim.client() as client:
        await client.put(f"/api/v0/instances/{instance_id}/", json={"state": "stopped"})
        await sim.wait_for_status(instance_id, "stopped")
        await sim.admin.take_host(instance_id)
        start = await client.put(f"/api/v0/instances/{instance_id}/", json={"state": "running"})
        waiting = (await client.get(f"/api/v0/instances/{instance_id}/")).json()["instances"]
    assert start.json() == {"success": True}
    assert waiting["actual_status"] == "stopped" and waiting["intended_status"] == "running"
    assert waiting["status_msg"].startswith("Scheduling")

    await sim.admin.return_host(instance_id)
    await sim.wait_for_status(instance_id, "running")


async def test_a_failing_create_ends_exited_with_an_oci_error(sim: SimHandle) -> None:
    await sim.admin.fail_next_create()
    async with sim.client() as client:
        instance_id = await rent(client)
    exited = await sim.wait_for_status(instance_id, "exited")
    assert ": OCI runtime create failed:" in exited["status_msg"]
    assert "ports" not in exited


async def test_gpu_load_is_written_for_the_agent(sim: SimHandle) -> None:
    key = new_key()
    instance_id, port = await _running_machine(sim, key)
    await sim.admin.set_gpu_load(instance_id, 87.5, memory_used_mb=12000)
    async with connect(port, key) as conn:
        result = await conn.run('cat "$DUMONT_SIM_GPU_FILE"', check=True)
    gpus = json.loads(str(result.stdout))["gpus"]
    assert gpus and all(g["utilization_percent"] == 87.5 for g in gpus)
    assert all(g["memory_used_mb"] == 12000 for g in gpus)
    async with sim.client() as client:
        shown = (await client.get(f"/api/v0/instances/{instance_id}/")).json()["instances"]
    assert shown["gpu_util"] == 87.5


async def test_kill_minus_9_restart_keeps_instances_and_ssh_comes_back(sim: SimHandle) -> None:
    key = new_key()
    running_id, port = await _running_machine(sim, key)
    async with sim.client() as client:
        stopped_id = await rent(client, label="to-stop")
        await sim.wait_for_status(stopped_id, "running")
        await client.put(f"/api/v0/instances/{stopped_id}/", json={"state": "stopped"})
        await sim.wait_for_status(stopped_id, "stopped")
    async with connect(port, key) as conn:
        await conn.run("echo survives > /workspace/state.txt", check=True)
        host_key = conn.get_server_host_key()

    await sim.restart()

    async with sim.client() as client:
        listed = (await client.get("/api/v1/instances/")).json()["instances"]
    by_id = {row["id"]: row for row in listed}
    assert set(by_id) == {running_id, stopped_id}
    assert by_id[stopped_id]["actual_status"] == "stopped"
    assert by_id[stopped_id]["label"] == "to-stop"
    restored = await sim.wait_for_status(running_id, "running")
    assert restored["ssh_port"] == port
    async with connect(port, key) as conn:
        assert (await conn.run("cat /workspace/state.txt", check=True)).stdout == "survives\n"
        assert conn.get_server_host_key() == host_key


def _openssh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


async def test_plain_directories_without_namespaces_and_the_openssh_client(tmp_path: Path) -> None:
    identity = tmp_path / "id_ed25519"
    key = new_key()
    key.write_private_key(str(identity))
    identity.chmod(0o600)
    options = [
        "-i",
        str(identity),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
    ]
    local = tmp_path / "upload.txt"
    local.write_text("uploaded\n")

    async with running_sim(tmp_path / "sim", extra_args=["--isolation", "plain"]) as sim:
        _, port = await _running_machine(sim, key)
        target = ["-p", str(port), "root@127.0.0.1"]
        copy = await asyncio.to_thread(
            _openssh, "scp", *options, "-P", str(port), str(local), "root@127.0.0.1:upload.txt"
        )
        run = await asyncio.to_thread(
            _openssh, "ssh", *options, *target, 'echo "$DUMONT_WORKSPACE"; pwd; cat upload.txt'
        )
        tty = await asyncio.to_thread(_openssh, "ssh", *options, "-tt", *target, "tty; exit 3")
        workspace = (await sim.admin.instances())[0]["workspace_path"]

    assert copy.returncode == 0, copy.stderr
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{workspace}\n{workspace}\nuploaded\n"
    assert tty.returncode == 3 and "/dev/pts/" in tty.stdout
