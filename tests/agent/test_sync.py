"""`python3 -m agent.sync --once`: real rsync over real SSH (OpenSSH's client) to a sim machine
standing in for the standby, with a plain key (the sim's forced commands are not relied on)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.sync import bytes_sent, rsync_command
from agent.sync_config import SyncConfig, SyncConfigError
from tests.agent.helpers import eventually
from tests.agent.sync_helpers import Standby, lock_waiters, standby, tree
from tests.fixtures.sim import REPO_ROOT, SimHandle


class Once:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def result(self) -> tuple[int, Any, str]:
        """(exit status, the printed JSON or None, stderr)."""
        out, err = await asyncio.wait_for(self.process.communicate(), 60)
        printed = json.loads(out) if out.strip() else None
        assert self.process.returncode is not None
        return self.process.returncode, printed, err.decode()


async def start_once(sync_file: Path) -> Once:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.sync",
        "--config",
        str(sync_file),
        "--once",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Once(process)


async def once(sync_file: Path) -> tuple[int, Any, str]:
    return await (await start_once(sync_file)).result()


@pytest.fixture
async def target(sim: SimHandle, tmp_path: Path) -> Any:
    standby_ = await standby(sim, tmp_path / "agent")
    try:
        yield standby_
    finally:
        standby_.gate.stop()


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    (root / "data").mkdir(parents=True)
    (root / "data" / "weights.bin").write_bytes(os.urandom(2_000_000))
    (root / "notes.txt").write_text("hello\n")
    (root / "scratch.tmp").write_text("not synced")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    return root


async def test_a_first_sync_copies_the_workspace_then_only_changes_and_deletions_travel(
    target: Standby, tmp_path: Path
) -> None:
    source = workspace(tmp_path)
    target.write_sync_file(source)

    code, first, err = await once(target.sync_file)
    assert code == 0, err
    expected = {k: v for k, v in tree(source).items() if k != "scratch.tmp"}  # excluded
    assert tree(target.workspace) == expected
    assert (target.workspace / "run.sh").stat().st_mode & 0o777 == 0o755
    assert first["bytes_sent"] > 2_000_000  # the random file does not compress
    status = target.status()
    assert status["last_success_at"] == first["completed_at"] == status["last_attempt_at"]
    assert status["consecutive_failures"] == 0 and status["error"] is None
    assert status["last_bytes_sent"] == first["bytes_sent"]
    assert status["target"] == f"root@127.0.0.1:{target.gate.port}"

    # A small change: rsync sends it, not the 2 MB file again.
    (source / "notes.txt").write_text("hello again\n")
    code, second, err = await once(target.sync_file)
    assert code == 0, err
    assert (target.workspace / "notes.txt").read_text() == "hello again\n"
    assert second["bytes_sent"] < 20_000
    assert second["completed_at"] > first["completed_at"]

    # A deletion reaches the standby.
    (source / "data" / "weights.bin").unlink()
    code, _, err = await once(target.sync_file)
    assert code == 0, err
    assert not (target.workspace / "data" / "weights.bin").exists()
    assert tree(target.workspace) == {k: v for k, v in tree(source).items() if k != "scratch.tmp"}


async def test_an_unreachable_target_counts_failures_and_keeps_the_last_success(
    target: Standby, tmp_path: Path
) -> None:
    source = workspace(tmp_path)
    target.write_sync_file(source)
    code, first, err = await once(target.sync_file)
    assert code == 0, err

    target.gate.close()  # connection refused
    for failures in (1, 2):
        code, printed, err = await once(target.sync_file)
        assert (code, printed) == (1, None)
        assert "rsync exited" in err and "Connection refused" in err
        status = target.status()
        assert status["consecutive_failures"] == failures
        assert status["last_success_at"] == first["completed_at"]  # the standby still has it
        assert "refused" in status["error"]
        assert status["last_attempt_at"] > first["completed_at"]

    target.gate.forward()
    code, again, err = await once(target.sync_file)
    assert code == 0, err
    status = target.status()
    assert (status["consecutive_failures"], status["error"]) == (0, None)
    assert status["last_success_at"] == again["completed_at"]


async def test_once_waits_for_the_sync_in_progress_then_runs_its_own(
    target: Standby, tmp_path: Path
) -> None:
    source = workspace(tmp_path)
    target.write_sync_file(source)
    target.gate.hold()  # the first sync connects and waits for the server
    first = await start_once(target.sync_file)
    await eventually(lambda: target.gate.accepted == 1)
    second = await start_once(target.sync_file)
    await eventually(lambda: second.process.pid in lock_waiters(target.agent_dir / "sync.lock"))
    assert target.gate.accepted == 1  # the second has not started its rsync

    target.gate.forward()  # the held connection stays held: the first sync times out
    code, _, err = await first.result()
    assert code == 1 and "banner exchange" in err, err
    code, printed, err = await second.result()
    assert code == 0, err
    assert target.gate.accepted == 2
    assert target.status()["last_success_at"] == printed["completed_at"]
    assert tree(target.workspace)["notes.txt"] == b"hello\n"


async def test_a_missing_workspace_is_never_pushed(target: Standby, tmp_path: Path) -> None:
    (target.workspace / "kept.txt").write_text("on the standby")
    target.write_sync_file(tmp_path / "not-there")
    code, _, err = await once(target.sync_file)
    assert code == 1 and "not a directory" in err
    assert (target.workspace / "kept.txt").exists()  # --delete never ran
    assert target.status()["consecutive_failures"] == 1


def _sync(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "machine_id": "m-1",
        "workspace": "/workspace",
        "target": {"host": "10.0.0.2", "port": 22, "user": "dumont", "path": "/workspace"},
        "key_file": "/opt/dumont-agent/sync/id_ed25519",
        "known_hosts_file": "/opt/dumont-agent/sync/known_hosts",
        "excludes": ["*.tmp", "--delete-everything", "a b"],
    }
    target = {**base["target"], **changes.pop("target", {})}
    return {**base, **changes, "target": target}


def test_the_command_keeps_the_users_words_as_single_arguments() -> None:
    command = rsync_command(SyncConfig.from_dict(_sync()))
    rsync = command.index("rsync")
    assert command[rsync + 1 : rsync + 5] == ["-a", "--delete", "--partial", "--numeric-ids"]
    # Each exclude is one argument with its option: never an option of its own.
    assert ["--exclude=*.tmp", "--exclude=--delete-everything", "--exclude=a b"] == [
        word for word in command if word.startswith("--exclude")
    ]
    assert command[-2:] == ["/workspace/", "dumont@10.0.0.2:"]  # rrsync roots the path
    ssh = command[command.index("-e") + 1]
    assert "-i /opt/dumont-agent/sync/id_ed25519 -p 22" in ssh
    assert "UserKnownHostsFile=/opt/dumont-agent/sync/known_hosts" in ssh


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"target": {"host": "-oProxyCommand=sh"}}, "target.host"),
        ({"target": {"user": "-l"}}, "target.user"),
        ({"target": {"port": 0}}, "target.port"),
        ({"key_file": "/a key"}, "key_file"),
        ({"workspace": "relative"}, "workspace"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"excludes": ["ok", "new\nline"]}, "exclude"),
    ],
)
def test_a_bad_sync_file_is_refused(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(SyncConfigError, match=says):
        SyncConfig.from_dict(_sync(**changes))


def test_bytes_sent_is_read_from_the_stats() -> None:
    stats = subprocess.run(
        ["rsync", "-a", "--stats", "--dry-run", f"{REPO_ROOT}/agent/", "/nonexistent-dest/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Total bytes sent:" in stats
    assert bytes_sent(stats) is not None and bytes_sent(stats) > 0  # type: ignore[operator]
    assert bytes_sent("Total bytes sent: 1,234,567\n") == 1_234_567
    assert bytes_sent("no stats") is None


@pytest.mark.skipif(not Path("/usr/bin/rrsync").exists(), reason="needs rrsync")
def test_the_standbys_rrsync_takes_the_push_into_its_workspace(tmp_path: Path) -> None:
    """The standby's forced command, `rrsync /workspace`, accepts every option of the push and
    roots its destination (here a stand-in for ssh runs rrsync as sshd would)."""
    source, rooted = workspace(tmp_path), tmp_path / "standby-workspace"
    rooted.mkdir()
    (rooted / "stale.txt").write_text("deleted by the push")
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text(
        "#!/bin/sh\n"
        'while [ "$1" != 10.0.0.2 ]; do shift; done; shift\n'
        f'SSH_ORIGINAL_COMMAND="$*" exec /usr/bin/rrsync {rooted}\n'
    )
    fake_ssh.chmod(0o755)
    command = rsync_command(SyncConfig.from_dict(_sync(workspace=str(source))))
    command[command.index("-e") + 1] = str(fake_ssh)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert tree(rooted) == {k: v for k, v in tree(source).items() if k != "scratch.tmp"}
    assert bytes_sent(result.stdout) is not None
