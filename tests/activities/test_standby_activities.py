"""The standby activities against real sim machines: a vast "GPU" machine (root) and a GCE VM
standby (user dumont), both made with the production providers, reached over real SSH, the
sync and the restore done by real rsync and checked on the machines themselves."""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncssh
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.standby_restore as standby_restore
from activities.provider import ProviderActivities
from activities.standby import StandbyActivities
from activities.standby_shell import Remote
from core.contracts import instance_label
from core.contracts.activities import ProvisionInput, WaitReadyInput
from core.contracts.errors import ErrorType
from core.contracts.machine import InstanceInfo, MachineKind, MachineSpec
from core.contracts.standby import (
    InstanceCheckInput,
    LinkStandbyInput,
    RestoreFromStandbyInput,
    SyncNowInput,
    UnlinkStandbyInput,
    standby_label,
)
from core.contracts.states import InstanceStatus
from core.ssh import SshIdentity
from providers.registry import ProviderRegistry
from providers.vast import VastProvider
from tests.fixtures.sim import SimHandle
from tests.providers.gcp_helpers import gcp_provider

GPU_SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch", disk_gb=20)
CPU_SPEC = MachineSpec(
    kind=MachineKind.CPU,
    image="debian-12",
    disk_gb=10,
    provider="gcp",
    machine_type="e2-medium",
    spot=True,
)
PROJECT = "standby-acts"


@pytest.fixture
async def registry(cloud: SimHandle) -> AsyncIterator[ProviderRegistry]:
    registry = ProviderRegistry(
        {
            "vast": VastProvider(cloud.url, cloud.api_key),
            "gcp": gcp_provider(cloud, project=PROJECT),
        }
    )
    try:
        yield registry
    finally:
        await registry.aclose()


@pytest.fixture
def provider_activities(registry: ProviderRegistry, identity: SshIdentity) -> ProviderActivities:
    return ProviderActivities(registry, identity, poll_seconds=0.1, ssh_timeout_seconds=5)


@pytest.fixture
def acts(registry: ProviderRegistry, identity: SshIdentity) -> StandbyActivities:
    return StandbyActivities(registry, identity)


async def run(activity_fn: Callable[..., Awaitable[Any]], arg: Any) -> Any:
    return await ActivityEnvironment().run(activity_fn, arg)


@dataclass
class Machines:
    """Makes machines with the production providers and runs commands on them as Dumont."""

    provider_activities: ProviderActivities
    identity: SshIdentity
    machine_id: str

    async def _ready(self, spec: MachineSpec, label: str) -> InstanceInfo:
        acts = self.provider_activities
        made = await run(
            acts.provision_instance,
            ProvisionInput(machine_id=self.machine_id, spec=spec, label=label),
        )
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        waited = await run(acts.wait_until_ready, WaitReadyInput(instance=made, deadline=deadline))
        assert waited.ready, waited.detail
        info: InstanceInfo = waited.instance
        return info

    async def gpu(self, attempt: int = 1) -> InstanceInfo:
        return await self._ready(GPU_SPEC, instance_label(self.machine_id, attempt))

    async def standby(self) -> InstanceInfo:
        info = await self._ready(CPU_SPEC, standby_label(self.machine_id, 1))
        assert info.ssh_user == "dumont"
        return info

    async def sh(self, info: InstanceInfo, script: str, *, check: bool = True) -> str:
        """A script run on the machine with Dumont's key, as its login user."""
        assert info.ssh_host and info.ssh_port
        async with asyncssh.connect(
            info.ssh_host,
            info.ssh_port,
            username=info.ssh_user,
            client_keys=[self.identity.load()],
            known_hosts=None,
            agent_path=None,
            config=None,
        ) as conn:
            result = await conn.run("sh -s", input=script, check=False, timeout=60)
        if check:
            assert result.exit_status == 0, (result.stdout, result.stderr)
        return str(result.stdout)


@pytest.fixture
def machines(provider_activities: ProviderActivities, identity: SshIdentity) -> Machines:
    return Machines(provider_activities, identity, f"m-{uuid.uuid4().hex[:12]}")


def link_input(machines: Machines, gpu: InstanceInfo, standby: InstanceInfo) -> LinkStandbyInput:
    return LinkStandbyInput(
        machine_id=machines.machine_id, gpu=gpu, standby=standby, excludes=["*.tmp"]
    )


# What the agent runs every tick (agent/sync.py), from the sync file the link wrote.
AGENT_PUSH = r"""
set -e
d=$(for c in /opt/dumont-agent "$HOME/.dumont-agent"; do
  [ -f "$c/sync.json" ] && echo "$c" && break; done)
eval "$(python3 - "$d/sync.json" <<'EOF'
import json, shlex, sys
c = json.load(open(sys.argv[1]))
t = c["target"]
for k, v in [("KEY", c["key_file"]), ("KNOWN", c["known_hosts_file"]), ("HOST", t["host"]),
             ("PORT", t["port"]), ("USER_", t["user"]), ("WS", c["workspace"])]:
    print(f"{k}={shlex.quote(str(v))}")
print("EXCLUDES=" + shlex.quote(" ".join("--exclude=" + e for e in c["excludes"])))
EOF
)"
rsync -a --delete --numeric-ids $EXCLUDES -e "ssh -i $KEY -p $PORT -o BatchMode=yes \
  -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=$KNOWN" "$WS/" "$USER_@$HOST:"
"""


async def test_link_sets_up_a_sync_the_agent_can_push_with(
    acts: StandbyActivities, machines: Machines
) -> None:
    gpu, standby = await machines.gpu(), await machines.standby()
    result = await run(acts.link_standby, link_input(machines, gpu, standby))
    assert result.installed == []  # the sim's machines have rsync, rrsync and python3
    assert "BEGIN OPENSSH PRIVATE KEY" not in repr(result)

    said = await machines.sh(
        gpu,
        'cat /opt/dumont-agent/sync.json; stat -c "%a %n" '
        "/opt/dumont-agent/sync/id_ed25519 /opt/dumont-agent/sync.json",
    )
    config_text, _, modes = said.partition("}\n")
    config = json.loads(config_text + "}")
    assert config == {
        "machine_id": machines.machine_id,
        "workspace": "/workspace",
        "target": {
            "host": standby.ssh_host,
            "port": standby.ssh_port,
            "user": "dumont",
            "path": "/workspace",
        },
        "key_file": "/opt/dumont-agent/sync/id_ed25519",
        "known_hosts_file": "/opt/dumont-agent/sync/known_hosts",
        "interval_seconds": 30,
        "excludes": ["*.tmp"],
    }
    assert modes.split() == [
        "600",
        "/opt/dumont-agent/sync/id_ed25519",
        "600",
        "/opt/dumont-agent/sync.json",
    ]
    public = (await machines.sh(gpu, "cat /opt/dumont-agent/sync/id_ed25519.pub")).split()
    keys = await machines.sh(standby, 'cat "$HOME/.ssh/authorized_keys"')
    assert (
        f'restrict,command="rrsync /workspace" {public[0]} {public[1]} '
        f"dumont-sync-{machines.machine_id}"
    ) in keys.splitlines()

    # The agent's push lands the workspace on the standby; excluded files stay behind.
    await machines.sh(
        gpu,
        "mkdir -p /workspace/proj/empty && echo hello > /workspace/proj/a.txt"
        " && echo scratch > /workspace/proj/b.tmp && chmod 750 /workspace/proj",
    )
    await machines.sh(gpu, AGENT_PUSH)
    listing = await machines.sh(
        standby, 'cat /workspace/proj/a.txt; ls -A /workspace/proj; stat -c "%a" /workspace/proj'
    )
    assert listing.split() == ["hello", "a.txt", "empty", "750"]

    # The key does nothing else: no command of its own on the standby.
    denied = await machines.sh(
        gpu,
        "d=/opt/dumont-agent/sync; ssh -i $d/id_ed25519 -p "
        f"{standby.ssh_port} -o BatchMode=yes -o UserKnownHostsFile=$d/known_hosts "
        f"dumont@{standby.ssh_host} cat /etc/hostname; echo exit=$?",
    )
    assert "exit=0" not in denied


async def test_link_twice_leaves_one_line_and_the_same_key(
    acts: StandbyActivities, machines: Machines
) -> None:
    gpu, standby = await machines.gpu(), await machines.standby()
    theirs = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxhbmQtd3JpdHRlbi1rZXktb2YtdGhlLXVzZXI user@laptop"
    )
    await machines.sh(
        standby,
        f'mkdir -p "$HOME/.ssh"; echo {shlex.quote(theirs)} >> "$HOME/.ssh/authorized_keys"',
    )
    await run(acts.link_standby, link_input(machines, gpu, standby))
    first = await machines.sh(gpu, "cat /opt/dumont-agent/sync/id_ed25519.pub")
    again = link_input(machines, gpu, standby)
    again.interval_seconds = 60
    await run(acts.link_standby, again)
    assert await machines.sh(gpu, "cat /opt/dumont-agent/sync/id_ed25519.pub") == first
    lines = (await machines.sh(standby, 'cat "$HOME/.ssh/authorized_keys"')).splitlines()
    ours = [line for line in lines if line.endswith(f" dumont-sync-{machines.machine_id}")]
    assert len(ours) == 1 and theirs in lines
    config = json.loads(await machines.sh(gpu, "cat /opt/dumont-agent/sync.json"))
    assert config["interval_seconds"] == 60


async def test_link_makes_the_agent_directory_where_the_installer_would(
    acts: StandbyActivities, machines: Machines
) -> None:
    """No agent yet: /opt/dumont-agent, as the installer chooses for root; an agent already
    installed elsewhere (the directory holding its config) gets the sync file there."""
    gpu, standby = await machines.gpu(), await machines.standby()
    await machines.sh(
        gpu, 'mkdir -p "$HOME/.dumont-agent" && echo {} > "$HOME/.dumont-agent/config.json"'
    )
    result = await run(acts.link_standby, link_input(machines, gpu, standby))
    home = (await machines.sh(gpu, 'echo "$HOME"')).strip()
    assert result.detail.startswith(f"{home}/.dumont-agent/sync.json pushes to dumont@")
    assert (await machines.sh(gpu, "ls /opt/dumont-agent 2>/dev/null; echo end")).split() == ["end"]


async def test_unlink_removes_the_sync_file_and_a_gone_machine_is_done(
    acts: StandbyActivities, machines: Machines, cloud: SimHandle
) -> None:
    gpu, standby = await machines.gpu(), await machines.standby()
    await run(acts.link_standby, link_input(machines, gpu, standby))
    said = await run(acts.unlink_standby, UnlinkStandbyInput(gpu=gpu))
    assert said == "removed /opt/dumont-agent/sync.json"
    assert (await machines.sh(gpu, "ls /opt/dumont-agent")).split() == ["sync"]
    # The agent finds no sync file: its push has nothing to go by.
    assert "exit=0" not in await machines.sh(gpu, AGENT_PUSH + "\necho exit=$?", check=False)
    assert await run(acts.unlink_standby, UnlinkStandbyInput(gpu=gpu)) == "no sync file"
    async with cloud.client() as client:
        (await client.delete(f"/api/v0/instances/{gpu.instance_id}/")).raise_for_status()
    gone = await run(acts.unlink_standby, UnlinkStandbyInput(gpu=gpu))
    assert gone.startswith("nothing to stop: the GPU machine: cannot reach")


# A stand-in for agent/sync.py's `--once` (written by another part): one push as the agent
# does it, and the JSON line the activity reads.
FAKE_SYNC = r"""
import json, subprocess, sys, time
from datetime import datetime, timezone
c = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
assert "--once" in sys.argv
t = c["target"]
ssh = (f"ssh -i {c['key_file']} -p {t['port']} -o BatchMode=yes "
       f"-o UserKnownHostsFile={c['known_hosts_file']}")
started = time.monotonic()
done = subprocess.run(["rsync", "-a", "--delete", "--stats", "-e", ssh, c["workspace"] + "/",
                       f"{t['user']}@{t['host']}:"], capture_output=True, text=True)
if done.returncode:
    sys.exit(done.stderr)
sent = [l for l in done.stdout.splitlines() if l.startswith("Total bytes sent:")]
print(json.dumps({"completed_at": datetime.now(timezone.utc).isoformat(),
                  "seconds": time.monotonic() - started,
                  "bytes_sent": int(sent[0].split(":")[1].replace(",", ""))}))
"""


async def test_sync_now_runs_the_agents_sync_once(
    acts: StandbyActivities, machines: Machines
) -> None:
    gpu, standby = await machines.gpu(), await machines.standby()
    with pytest.raises(ApplicationError) as unlinked:
        await run(acts.sync_now, SyncNowInput(machine_id=machines.machine_id, gpu=gpu))
    assert unlinked.value.non_retryable and "not linked" in unlinked.value.message
    await run(acts.link_standby, link_input(machines, gpu, standby))
    await machines.sh(
        gpu,
        "mkdir -p /opt/dumont-agent/agent && touch /opt/dumont-agent/agent/__init__.py"
        f" && cat > /opt/dumont-agent/agent/sync.py <<'EOF'\n{FAKE_SYNC}\nEOF\n"
        "head -c 100000 /dev/urandom > /workspace/weights.bin",
    )
    before = datetime.now(UTC)
    outcome = await run(acts.sync_now, SyncNowInput(machine_id=machines.machine_id, gpu=gpu))
    assert outcome.completed_at >= before and outcome.bytes_sent > 100000
    assert (await machines.sh(standby, "stat -c %s /workspace/weights.bin")).strip() == "100000"


TREE = r"""
set -e
cd /workspace
mkdir -p code/pkg data/empty secrets 'with space'
printf 'print(1)\n' > code/run.sh && chmod 755 code/run.sh
printf 'x = 1\n' > code/pkg/mod.py
head -c 300000 /dev/urandom > data/blob.bin
printf 'key' > secrets/token && chmod 600 secrets/token && chmod 700 secrets
printf 'spaced' > 'with space/file name.txt'
ln -s ../code/run.sh data/run-link
ln -s /nowhere/at/all dangling
printf 'scratch' > data/cache.tmp
"""


async def restored_pair(
    acts: StandbyActivities, machines: Machines
) -> tuple[InstanceInfo, InstanceInfo, RestoreFromStandbyInput]:
    """A standby with a tree in its workspace and a new GPU machine with stale files."""
    standby, gpu = await machines.standby(), await machines.gpu(attempt=2)
    await machines.sh(standby, TREE)
    await machines.sh(
        gpu,
        "mkdir -p /workspace/code /workspace/old/deep && echo stale > /workspace/old/deep/f"
        " && echo stale > /workspace/code/deleted.py && echo mine > /workspace/keep.tmp",
    )
    restore = RestoreFromStandbyInput(
        machine_id=machines.machine_id, standby=standby, gpu=gpu, excludes=["*.tmp"]
    )
    return standby, gpu, restore


LISTING = (
    "cd /workspace && find . -mindepth 1 | sort | while read -r p; do "
    'if [ -L "$p" ]; then echo "$p -> $(readlink "$p")"; '
    'elif [ -d "$p" ]; then echo "$p/ $(stat -c %a "$p")"; '
    'else echo "$p $(stat -c %a "$p") $(sha256sum < "$p" | cut -c1-16)"; fi; done'
)


async def test_restore_copies_and_verifies_the_whole_tree(
    acts: StandbyActivities, machines: Machines
) -> None:
    standby, gpu, restore = await restored_pair(acts, machines)
    result = await run(acts.restore_from_standby, restore)
    theirs = (await machines.sh(standby, LISTING)).splitlines()
    ours = (await machines.sh(gpu, LISTING)).splitlines()
    # Modes, symlinks (also dangling ones), empty directories; what the standby has not is
    # deleted; excluded files are neither copied nor deleted.
    assert [line for line in theirs if "cache.tmp" not in line] == [
        line for line in ours if "keep.tmp" not in line
    ]
    assert "./data/empty/ 755" in ours and "./dangling -> /nowhere/at/all" in ours
    assert "./secrets/ 700" in ours and any(line.startswith("./code/run.sh 755") for line in ours)
    assert not any("old" in line or "deleted.py" in line or "cache.tmp" in line for line in ours)
    assert any(line.startswith("./keep.tmp") for line in ours)
    assert (result.files, result.bytes_total) == (5, 300000 + 9 + 6 + 3 + 6)
    assert result.bytes_received > 300000 and len(result.tree_hash) == 64
    # The read-only key is gone from the standby, and its pair from the GPU machine.
    keys = await machines.sh(standby, 'cat "$HOME/.ssh/authorized_keys"')
    assert "dumont-restore-" not in keys
    assert (
        await machines.sh(gpu, "ls -d /tmp/dumont-restore.* 2>/dev/null; echo end")
    ).split() == ["end"]
    again = await run(acts.restore_from_standby, restore)  # nothing to copy: the same tree
    assert again.tree_hash == result.tree_hash and again.bytes_received < 100000


@pytest.mark.parametrize(
    ("tamper", "said"),
    [
        ("printf 'x = 2\\n' > /workspace/code/pkg/mod.py", "same counts, different contents"),
        ("echo more >> /workspace/code/pkg/mod.py", "the standby has 5 files, 300029 bytes"),
        ("chmod 700 /workspace/code/run.sh", "same counts, different contents"),
    ],
)
async def test_a_standby_file_changed_after_the_copy_fails_the_check(
    acts: StandbyActivities,
    machines: Machines,
    monkeypatch: pytest.MonkeyPatch,
    tamper: str,
    said: str,
) -> None:
    standby, _gpu, restore = await restored_pair(acts, machines)
    real_tree = standby_restore._tree

    async def tampered_first(remote: Remote, excludes: list[str]) -> standby_restore.TreeSummary:
        if remote.role == "standby":
            await machines.sh(standby, tamper)
        return await real_tree(remote, excludes)

    monkeypatch.setattr(standby_restore, "_tree", tampered_first)
    with pytest.raises(ApplicationError) as failed:
        await run(acts.restore_from_standby, restore)
    assert failed.value.type == ErrorType.RESTORE_FAILED and not failed.value.non_retryable
    assert "differs from the standby's" in failed.value.message and said in failed.value.message
    keys = await machines.sh(standby, 'cat "$HOME/.ssh/authorized_keys"')
    assert "dumont-restore-" not in keys


async def test_check_instance_sees_running_interrupted_stopped_and_gone(
    acts: StandbyActivities, machines: Machines, cloud: SimHandle
) -> None:
    gpu, standby = await machines.gpu(), await machines.standby()
    seen = await run(acts.check_instance, InstanceCheckInput(instance=gpu))
    assert (seen.status, seen.interrupted) == (InstanceStatus.RUNNING, False)

    await cloud.admin.interrupt(int(gpu.instance_id))  # outbid
    seen = await run(acts.check_instance, InstanceCheckInput(instance=gpu))
    assert (seen.status, seen.interrupted) == (InstanceStatus.STOPPED, True), seen.detail

    zone, name = standby.provider_data["zone"], standby.instance_id.split("/")[-1]
    await cloud.gce_admin.preempt(PROJECT, zone, name)
    seen = await run(acts.check_instance, InstanceCheckInput(instance=standby))
    assert (seen.status, seen.interrupted) == (InstanceStatus.STOPPED, True), seen.detail

    other = await machines.gpu(attempt=2)
    async with cloud.client() as client:
        stopped = await client.put(
            f"/api/v0/instances/{other.instance_id}/", json={"state": "stopped"}
        )
        stopped.raise_for_status()
        await cloud.wait_for_status(int(other.instance_id), "stopped")
        seen = await run(acts.check_instance, InstanceCheckInput(instance=other))
        assert (seen.status, seen.interrupted) == (InstanceStatus.STOPPED, False)
        (await client.delete(f"/api/v0/instances/{other.instance_id}/")).raise_for_status()
    seen = await run(acts.check_instance, InstanceCheckInput(instance=other))
    assert (seen.status, seen.interrupted) == (InstanceStatus.GONE, False)
