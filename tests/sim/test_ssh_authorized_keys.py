"""Keys a login user adds to its own ~/.ssh/authorized_keys, with OpenSSH options, on GCE VMs
(the metadata user) and vast machines (root): real sim, OpenSSH's ssh and rsync, real rrsync."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from google.cloud import compute_v1

from sim.sandbox import authorized
from tests.fixtures.sim import SimHandle, running_sim
from tests.sim.gce.helpers import ZONE, Gce, call, clients, create, nat_ip, ssh_keys
from tests.sim.helpers import new_key, public, rent

SYNC = 'restrict,command="rrsync /workspace"'
RESTORE = 'restrict,command="rrsync -ro /workspace"'
# `ssh -W`, with the reason a refused channel gives shown (LogLevel ERROR hides it).
FORWARD = ("-o", "LogLevel=INFO", "-W", "127.0.0.1:22")
PROHIBITED = "open failed: administratively prohibited"
_OPENSSH = (
    *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"),
    *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
)


@pytest.fixture(scope="module")
async def key_sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    async with running_sim(tmp_path_factory.mktemp("keys") / "sim", boot_delay=0.2) as handle:
        yield handle


class Login:
    """One login user on one machine, reached with OpenSSH and rsync using key files."""

    def __init__(self, host: str, port: int, user: str, workspace: Path, keys: Path) -> None:
        self.host, self.port, self.user, self.workspace, self.keys = (
            host,
            port,
            user,
            workspace,
            keys,
        )

    def key_file(self, key: asyncssh.SSHKey) -> Path:
        path = self.keys / f"id_{abs(hash(public(key)))}"
        if not path.exists():
            key.write_private_key(str(path))
            path.chmod(0o600)
        return path

    def ssh_argv(
        self, key: asyncssh.SSHKey, *command: str, options: tuple[str, ...] = ()
    ) -> list[str]:
        # ssh takes the first value of an option: the caller's come before the defaults.
        argv = ["ssh", "-i", str(self.key_file(key)), "-p", str(self.port), *options, *_OPENSSH]
        return [*argv, f"{self.user}@{self.host}", *command]

    async def ssh(
        self, key: asyncssh.SSHKey, *command: str, options: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return await _run(self.ssh_argv(key, *command, options=options))

    async def rsync(self, key: asyncssh.SSHKey, *args: str) -> subprocess.CompletedProcess[str]:
        shell = shlex.join(["ssh", "-i", str(self.key_file(key)), "-p", str(self.port), *_OPENSSH])
        return await _run(["rsync", "-a", "-e", shell, *args])

    @property
    def remote(self) -> str:
        return f"{self.user}@{self.host}:"

    async def authorize(self, admin_key: asyncssh.SSHKey, line: str) -> None:
        """Append `line` to the login user's authorized_keys from a session on the machine,
        as Dumont's control plane does."""
        done = await self.ssh(admin_key, f"echo {shlex.quote(line)} >> ~/.ssh/authorized_keys")
        assert done.returncode == 0, done.stderr


async def _run(argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def _line(options: str, key: asyncssh.SSHKey, comment: str = "dumont-sync-m-1") -> str:
    return f"{options} {public(key)} {comment}"


def _tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "train.py").write_text("print('hi')\n")
    (src / "data" / "shard-0").write_text("0" * 1000)
    return src


async def _vm(sim: SimHandle, tmp_path: Path, name: str, admin: asyncssh.SSHKey) -> Login:
    gce = clients(sim)
    vm = await call(create, gce, name, keys=ssh_keys(dumont=admin))
    machine = await sim.gce_admin.instance(gce.project, ZONE, name)
    return Login(nat_ip(vm), sim.gce_ssh_port, "dumont", Path(machine["workspace_path"]), tmp_path)


async def _vast(sim: SimHandle, tmp_path: Path, admin: asyncssh.SSHKey) -> tuple[Login, int]:
    async with sim.client() as client:
        response = await client.post("/api/v0/ssh/", json={"ssh_key": public(admin)})
        assert response.status_code == 200, response.text
        instance_id = await rent(client)
    await sim.wait_for_status(instance_id, "running")
    machine = await sim.admin.instance(instance_id)
    port = int(machine["ssh_port"])
    login = Login("127.0.0.1", port, "root", Path(machine["workspace_path"]), tmp_path)
    return login, instance_id


async def test_gce_sync_key_pushes_the_workspace_and_does_nothing_else(
    key_sim: SimHandle, tmp_path: Path
) -> None:
    admin, sync = new_key(), new_key()
    vm = await _vm(key_sim, tmp_path, "vm-sync", admin)
    prepared = await vm.ssh(
        admin, "sudo mkdir -p /workspace && sudo chown dumont /workspace && command -v rrsync"
    )
    assert prepared.returncode == 0, prepared.stderr
    await vm.authorize(admin, _line(SYNC, sync))
    src = _source(tmp_path)

    pushed = await vm.rsync(sync, "--delete", f"{src}/", vm.remote)
    assert pushed.returncode == 0, pushed.stderr
    assert _tree(vm.workspace) == _tree(src)
    # rrsync roots every path at /workspace: an absolute one lands below it, as on a real VM.
    nested = await vm.rsync(sync, f"{src}/", f"{vm.remote}/workspace/")
    assert nested.returncode == 0, nested.stderr
    assert _tree(vm.workspace / "workspace") == _tree(src)

    shell = await vm.ssh(sync, "cat /etc/passwd")
    assert shell.returncode != 0 and "root:" not in shell.stdout
    assert "rrsync" in shell.stderr  # the forced command answered, not a shell
    forward = await vm.ssh(sync, options=FORWARD)
    assert forward.returncode != 0 and PROHIBITED in forward.stderr
    # sftp (and scp, which speaks sftp) gets no SFTP server on a forced-command key.
    sftp = await _run(
        ["sftp", "-b", "-", "-P", str(vm.port), "-i", str(vm.key_file(sync)), *_OPENSSH,
         f"dumont@{vm.host}"],
        stdin="get /etc/passwd\n",
    )  # fmt: skip
    assert sftp.returncode != 0 and "root:" not in sftp.stdout
    # The key that made the VM is untouched by the other line; root never logs in on GCE.
    assert (await vm.ssh(admin, "echo $USER")).stdout.strip() == "dumont"
    root = Login(vm.host, vm.port, "root", vm.workspace, tmp_path)
    assert (await root.ssh(sync, "true")).returncode == 255


async def test_rrsync_ro_key_reads_the_workspace_but_cannot_write(
    key_sim: SimHandle, tmp_path: Path
) -> None:
    admin, restore = new_key(), new_key()
    vm = await _vm(key_sim, tmp_path, "vm-restore", admin)
    src = _source(tmp_path)
    pushed = await vm.rsync(admin, f"{src}/", f"{vm.remote}/workspace/")
    assert pushed.returncode == 0, pushed.stderr
    await vm.authorize(admin, _line(RESTORE, restore, "dumont-restore-m-1"))

    dest = tmp_path / "dest"
    pulled = await vm.rsync(restore, vm.remote, f"{dest}/")
    assert pulled.returncode == 0, pulled.stderr
    assert _tree(dest) == _tree(src)
    (src / "new-file").write_text("x")
    refused = await vm.rsync(restore, "--delete", f"{src}/", vm.remote)
    assert refused.returncode != 0
    assert not (vm.workspace / "new-file").exists()
    assert (vm.workspace / "train.py").exists()  # --delete did nothing either


async def test_vast_root_authorized_keys_line_works_likewise(
    key_sim: SimHandle, tmp_path: Path
) -> None:
    admin, sync, later = new_key(), new_key(), new_key()
    machine, instance_id = await _vast(key_sim, tmp_path, admin)
    await machine.authorize(admin, _line(SYNC, sync))
    src = _source(tmp_path)

    pushed = await machine.rsync(sync, f"{src}/", machine.remote)
    assert pushed.returncode == 0, pushed.stderr
    assert _tree(machine.workspace) == _tree(src)
    shell = await machine.ssh(sync, "cat /etc/passwd")
    assert shell.returncode != 0 and "root:" not in shell.stdout
    forward = await machine.ssh(sync, options=FORWARD)
    assert forward.returncode != 0 and PROHIBITED in forward.stderr
    # Root's file is root's: the same key is no one else's login (the attached keys are).
    other = Login(machine.host, machine.port, "ubuntu", machine.workspace, tmp_path)
    assert (await other.ssh(sync, "true")).returncode == 255
    assert (await other.ssh(admin, "echo in")).stdout.strip() == "in"

    # Attaching a key rewrites the file from the instance's keys, keeping root's own line.
    async with key_sim.client() as client:
        response = await client.post(
            f"/api/v0/instances/{instance_id}/ssh/", json={"ssh_key": public(later)}
        )
        assert response.status_code == 200, response.text
    assert (await machine.ssh(later, "echo in")).stdout.strip() == "in"
    (src / "after-attach").write_text("y")
    pushed = await machine.rsync(sync, f"{src}/", machine.remote)
    assert pushed.returncode == 0, pushed.stderr
    assert (machine.workspace / "after-attach").exists()


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


async def test_metadata_change_keeps_the_hand_written_line(
    key_sim: SimHandle, tmp_path: Path
) -> None:
    gce = clients(key_sim)
    admin, sync, new_admin = new_key(), new_key(), new_key()
    vm_record = await call(create, gce, "vm-meta", keys=ssh_keys(dumont=admin))
    machine = await key_sim.gce_admin.instance(gce.project, ZONE, "vm-meta")
    vm = Login(
        nat_ip(vm_record), key_sim.gce_ssh_port, "dumont", Path(machine["workspace_path"]), tmp_path
    )
    line = _line(SYNC, sync)
    await vm.authorize(admin, line)

    await _set_keys(gce, "vm-meta", ssh_keys(dumont=new_admin))
    text = (Path(machine["home_path"]) / "dumont" / ".ssh" / "authorized_keys").read_text()
    assert text.splitlines() == [
        line,
        "# Added by Google",
        " ".join(public(new_admin).split()[:2]),
    ]
    assert (await vm.ssh(admin, "true")).returncode == 255  # gone from the metadata
    assert (await vm.ssh(new_admin, "echo $USER")).stdout.strip() == "dumont"
    src = _source(tmp_path)
    pushed = await vm.rsync(sync, f"{src}/", vm.remote)
    assert pushed.returncode == 0, pushed.stderr
    assert _tree(vm.workspace) == _tree(src)


def _connect(login: Login, key: asyncssh.SSHKey) -> Any:
    return asyncssh.connect(
        login.host,
        login.port,
        username=login.user,
        client_keys=[key],
        known_hosts=None,
        agent_path=None,
    )


async def test_forced_command_sees_the_original_and_pty_and_forwarding_options(
    key_sim: SimHandle, tmp_path: Path
) -> None:
    admin, echo, opener = new_key(), new_key(), new_key()
    vm = await _vm(key_sim, tmp_path, "vm-options", admin)
    await vm.authorize(
        admin, _line('no-pty,command="echo forced:$SSH_ORIGINAL_COMMAND; tty || true"', echo)
    )
    await vm.authorize(admin, _line('permitopen="127.0.0.1:1",command="true"', opener))

    async with _connect(vm, echo) as conn:
        ran = await conn.run("ls /")
        assert str(ran.stdout).split("\n")[:2] == ["forced:ls /", "not a tty"]
        with pytest.raises(asyncssh.ChannelOpenError) as pty_refused:
            await conn.run("ls /", term_type="xterm")
        assert pty_refused.value.code == asyncssh.OPEN_REQUEST_PTY_FAILED
    # OpenSSH asks for a pty for a shell when its stdin is a terminal (script gives it one);
    # refused, it goes on, and the shell request runs the forced command, without a pty and
    # without an original command.
    terminal = await _run(["script", "-qec", shlex.join(vm.ssh_argv(echo)), "/dev/null"])
    assert "PTY allocation request failed" in terminal.stdout
    assert "forced:\nnot a tty" in terminal.stdout
    async with _connect(vm, opener) as conn:
        with pytest.raises(asyncssh.ChannelOpenError) as other_port:
            await conn.open_connection("127.0.0.1", 2)
        assert other_port.value.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED
        with pytest.raises(asyncssh.ChannelOpenError) as allowed:
            await conn.open_connection("127.0.0.1", 1)  # permitted; nothing listens there
        assert allowed.value.code == asyncssh.OPEN_CONNECT_FAILED


async def test_from_option_and_unreadable_lines(key_sim: SimHandle, tmp_path: Path) -> None:
    admin, elsewhere, good = new_key(), new_key(), new_key()
    vm = await _vm(key_sim, tmp_path, "vm-from", admin)
    await vm.authorize(admin, _line('from="10.0.0.0/8"', elsewhere))
    await vm.authorize(admin, 'command="unbalanced ssh-ed25519 AAAA garbage')
    await vm.authorize(admin, "not a key at all")
    await vm.authorize(admin, _line('from="127.0.0.0/8"', good))
    assert (await vm.ssh(elsewhere, "true")).returncode == 255
    assert (await vm.ssh(good, "echo $USER")).stdout.strip() == "dumont"


def test_with_managed_keeps_own_lines_and_replaces_managed_ones() -> None:
    marker = "# Added by Google"
    text = f"mine-1\n{marker}\nold-google\n\nmine-2 with options\n"
    assert authorized.with_managed(text, ["k1", "k2"], marker) == (
        f"mine-1\nmine-2 with options\n{marker}\nk1\n{marker}\nk2\n"
    )
    assert authorized.own_lines(text, marker) == ["mine-1", "mine-2 with options"]
    assert authorized.own_lines(text, None) == [
        "mine-1",
        marker,
        "old-google",
        "mine-2 with options",
    ]


def test_restrict_expands_and_keeps_what_is_given_back() -> None:
    options = authorized.effective_options({"restrict": True, "pty": True, "command": "x"})
    assert options == {
        "pty": True,
        "no-port-forwarding": True,
        "no-agent-forwarding": True,
        "no-X11-forwarding": True,
        "no-user-rc": True,
        authorized.FORCED_COMMAND: "x",
    }
