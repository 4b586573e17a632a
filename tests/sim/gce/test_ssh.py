"""GCE-style SSH: the metadata users log in at natIP:gce_ssh_port with their own keys."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncssh
import pytest
from google.cloud import compute_v1

from tests.fixtures.sim import SimHandle, running_sim
from tests.sim.gce.helpers import ZONE, Gce, call, clients, create, nat_ip, new_key, ssh_keys
from tests.sim.helpers import alive


def _connect(host: str, port: int, user: str, key: asyncssh.SSHKey) -> object:
    return asyncssh.connect(
        host, port, username=user, client_keys=[key], known_hosts=None, agent_path=None
    )


async def _run(host: str, port: int, user: str, key: asyncssh.SSHKey, command: str) -> str:
    async with _connect(host, port, user, key) as conn:  # type: ignore[attr-defined]
        result = await conn.run(command, check=True)
    return str(result.stdout).strip()


async def _refused(host: str, port: int, user: str, key: asyncssh.SSHKey) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(host, port, user, key):  # type: ignore[attr-defined]
            pass


async def _set_keys(gce: Gce, name: str, keys: str) -> None:
    vm = await call(gce.instances.get, project=gce.project, zone=ZONE, instance=name)
    metadata = compute_v1.Metadata(
        items=[compute_v1.Items(key="ssh-keys", value=keys)], fingerprint=vm.metadata.fingerprint
    )
    op = await call(
        gce.instances.set_metadata,
        project=gce.project,
        zone=ZONE,
        instance=name,
        metadata_resource=metadata,
    )
    await call(op.result, timeout=10)


async def test_metadata_user_logs_in_with_sudo_and_workspace(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    alice = new_key()
    vm = await call(create, gce, "vm-ssh", keys=ssh_keys(alice=alice))
    host, port = nat_ip(vm), gce_sim.gce_ssh_port
    machine = await gce_sim.gce_admin.instance(gce.project, ZONE, "vm-ssh")
    out = await _run(host, port, "alice", alice, "echo $USER $LOGNAME $HOME")
    assert out == f"alice alice {machine['home_path']}/alice"
    assert await call(os.path.isdir, f"{machine['home_path']}/alice/.ssh")
    assert await _run(host, port, "alice", alice, "sudo -n true && echo ok") == "ok"
    assert await _run(host, port, "alice", alice, "sudo -u root sh -c 'echo $USER'") == "root"
    assert await _run(host, port, "alice", alice, "sudo -i echo hi") == "hi"
    workspace = machine["visible_workspace"]
    out = await _run(
        host, port, "alice", alice, f"test -d {workspace} && touch {workspace}/x && echo ok"
    )
    assert out == "ok"
    assert await call(os.path.exists, f"{machine['workspace_path']}/x")


async def test_openssh_client_logs_in(gce_sim: SimHandle, tmp_path: Path) -> None:
    gce = clients(gce_sim)
    bob = new_key()
    vm = await call(create, gce, "vm-openssh", keys=ssh_keys(bob=bob))
    key_file = tmp_path / "id_ed25519"
    bob.write_private_key(str(key_file))
    key_file.chmod(0o600)
    ssh = await asyncio.create_subprocess_exec(
        "ssh",
        "-i", str(key_file),
        "-p", str(gce_sim.gce_ssh_port),
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "LogLevel=ERROR",
        f"bob@{nat_ip(vm)}",
        "echo $USER && sudo -n id -u >/dev/null && echo sudo-ok",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(ssh.communicate(), 30)
    assert ssh.returncode == 0, err.decode()
    assert out.decode().split() == ["bob", "sudo-ok"]


async def test_only_listed_users_with_their_own_keys(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    alice, bob, root_key = new_key(), new_key(), new_key()
    vm = await call(
        create, gce, "vm-auth", keys=ssh_keys(alice=alice, bob=bob) + "\n" + ssh_keys(root=root_key)
    )
    host, port = nat_ip(vm), gce_sim.gce_ssh_port
    await _refused(host, port, "root", root_key)  # listed, but GCE images refuse root
    await _refused(host, port, "carol", alice)  # not in the metadata
    await _refused(host, port, "alice", bob)  # bob's key is bob's only
    assert await _run(host, port, "bob", bob, "echo $USER") == "bob"


async def test_keys_set_by_set_metadata_apply_at_once(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    old, new = new_key(), new_key()
    vm = await call(create, gce, "vm-rotate", keys=ssh_keys(dev=old))
    host, port = nat_ip(vm), gce_sim.gce_ssh_port
    await _refused(host, port, "dev", new)
    await _set_keys(gce, "vm-rotate", ssh_keys(dev=new) + "\n" + ssh_keys(ops=old))
    assert await _run(host, port, "dev", new, "echo $USER") == "dev"
    await _refused(host, port, "dev", old)  # removed from dev
    assert (await _run(host, port, "ops", old, "echo $HOME")).endswith("/home/ops")


async def test_stop_ends_processes_and_ssh(gce_sim: SimHandle) -> None:
    gce = clients(gce_sim)
    key = new_key()
    vm = await call(create, gce, "vm-down", keys=ssh_keys(dev=key))
    host, port = nat_ip(vm), gce_sim.gce_ssh_port
    pid = int(
        await _run(host, port, "dev", key, "nohup setsid sleep 1000 >/dev/null 2>&1 & echo $!")
    )
    assert alive(pid)
    op = await call(gce.instances.stop, project=gce.project, zone=ZONE, instance="vm-down")
    await call(op.result, timeout=30)
    assert not alive(pid)
    with pytest.raises(OSError):
        await _run(host, port, "dev", key, "true")


async def test_a_restarted_sim_keeps_a_running_instance_reachable(tmp_path: Path) -> None:
    async with running_sim(tmp_path / "sim", boot_delay=0.2) as sim:
        gce = clients(sim)
        key = new_key()
        vm = await call(create, gce, "vm-keep", keys=ssh_keys(dev=key))
        await _run(nat_ip(vm), sim.gce_ssh_port, "dev", key, "touch /workspace/kept || true")
        await sim.restart()
        gce = clients(sim, gce.project)
        again = await call(gce.instances.get, project=gce.project, zone=ZONE, instance="vm-keep")
        assert again.status == "RUNNING" and again.id == vm.id
        assert nat_ip(again) == nat_ip(vm)
        assert await _run(nat_ip(again), sim.gce_ssh_port, "dev", key, "echo $USER") == "dev"
        ops = await call(lambda: list(gce.operations.list(project=gce.project, zone=ZONE)))
        assert [op.operation_type for op in ops] == ["insert"]
