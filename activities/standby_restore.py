"""The restore from the standby onto a new GPU machine, and its check.

The new GPU machine pulls with rsync, with a key pair made for this copy alone (in a temporary
directory on the GPU machine) that the standby accepts read-only (`rrsync -ro`); the key's line
is removed from the standby afterwards, whatever happened. Then both ends hash their tree
(agent/treehash.py, sent on stdin so both ends run the same code whatever agent they have)
and the hashes must be equal.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.standby_shell import (
    GPU_TOOLS,
    STANDBY_TOOLS,
    SUDO,
    Remote,
    authorize_line,
    ensure_tools,
    field,
    unauthorize_line,
)
from agent import treehash
from core.contracts.errors import ErrorType
from core.contracts.standby import (
    STANDBY_WORKSPACE,
    RestoreFromStandbyInput,
    RestoreFromStandbyResult,
)

RESTORE_FAILED = ErrorType.RESTORE_FAILED
COPY_SECONDS = 12 * 3600.0
HASH_SECONDS = 3600.0
# rsync: 24 = some source files vanished during the transfer (the check then decides).
RSYNC_OK = (0, 24)
_TREEHASH_SOURCE = Path(treehash.__file__).read_text()
_RECEIVED = re.compile(r"^Total bytes received:\s*([\d,.]+)", re.MULTILINE)


def restore_comment(machine_id: str) -> str:
    return f"dumont-restore-{machine_id}"


@dataclass(frozen=True)
class TreeSummary:
    files: int
    bytes: int
    entries: int
    hash: str

    def describe(self) -> str:
        return f"{self.files} files, {self.bytes} bytes, {self.entries} entries"


def _key_script(machine_id: str) -> str:
    """Tools, the workspace, and a one-off key pair; prints `dir:` and `pub:`."""
    comment = shlex.quote(restore_comment(machine_id))
    workspace = shlex.quote(STANDBY_WORKSPACE)
    return "\n".join(
        [
            "set -e",
            SUDO,
            ensure_tools(GPU_TOOLS, "the GPU machine"),
            f"$S mkdir -p {workspace}",
            f'$S chown "$(id -u):$(id -g)" {workspace}',
            "t=$(mktemp -d /tmp/dumont-restore.XXXXXX)",
            'chmod 700 "$t"',
            f'ssh-keygen -q -t ed25519 -N "" -C {comment} -f "$t/id_ed25519" </dev/null >/dev/null',
            'echo "dir: $t"',
            'echo "pub: $(cat "$t/id_ed25519.pub")"',
        ]
    )


def _standby_script(line_script: str) -> str:
    return "\n".join(["set -e", SUDO, ensure_tools(STANDBY_TOOLS, "the standby"), line_script])


def _copy_script(
    key_dir: str, known_hosts: str, source: tuple[str, int, str], excludes: list[str]
) -> str:
    """rsync pulling the standby's workspace into this machine's. Files come to belong to
    the login user here (the standby's owner is its own login, not the GPU machine's)."""
    host, port, user = source
    d = shlex.quote(key_dir)
    ssh = " ".join(
        [
            "ssh",
            f"-i {key_dir}/id_ed25519",
            f"-p {port}",
            "-o BatchMode=yes",
            "-o IdentitiesOnly=yes",
            "-o StrictHostKeyChecking=accept-new",
            f"-o UserKnownHostsFile={key_dir}/known_hosts",
            "-o ConnectTimeout=10",
            "-o ServerAliveInterval=10",
        ]
    )
    command = [
        "rsync",
        "-a",
        "--delete",
        "--numeric-ids",
        "--no-owner",
        "--no-group",
        "--stats",
        *(f"--exclude={pattern}" for pattern in excludes),
        "-e",
        ssh,
        f"{user}@{host}:./",  # rrsync: paths are relative to the standby's workspace
        f"{STANDBY_WORKSPACE}/",
    ]
    return "\n".join(
        [
            f"printf '%s\\n' {shlex.quote(known_hosts)} > {d}/known_hosts",
            "exec " + " ".join(shlex.quote(part) for part in command),
        ]
    )


async def _tree(remote: Remote, excludes: list[str]) -> TreeSummary:
    """The workspace's tree hash on one end, as root where sudo allows (files copied with
    their modes may not be readable by the login user)."""
    args = " ".join(shlex.quote(a) for a in [STANDBY_WORKSPACE, *_exclude_args(excludes)])
    command = (
        'if [ "$(id -u)" = 0 ]; then S=; elif sudo -n true 2>/dev/null; then S="sudo -n"; '
        f"else S=; fi; exec $S python3 - {args}"
    )
    said = await remote.run(
        command,
        _TREEHASH_SOURCE,
        "hashing the workspace",
        error_type=RESTORE_FAILED,
        seconds=HASH_SECONDS,
    )
    try:
        tree = json.loads(said.strip().splitlines()[-1])
        return TreeSummary(
            files=int(tree["files"]),
            bytes=int(tree["bytes"]),
            entries=int(tree["entries"]),
            hash=str(tree["hash"]),
        )
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise ApplicationError(
            f"hashing the workspace on the {remote.role} answered {said[-300:]!r}",
            type=RESTORE_FAILED,
        ) from exc


def _exclude_args(excludes: list[str]) -> list[str]:
    return [arg for pattern in excludes for arg in ("--exclude", pattern)]


def _received(stats: str) -> int:
    found = _RECEIVED.search(stats)
    return int(found.group(1).replace(",", "").split(".")[0]) if found else 0


async def restore(
    input: RestoreFromStandbyInput,
    gpu: Remote,
    standby: Remote,
    source: tuple[str, int, str],
    known_hosts: str,
) -> RestoreFromStandbyResult:
    """Copy and check; `source` is the standby's SSH address, `known_hosts` its host key line
    as Dumont saw it."""
    started = time.monotonic()
    said = await gpu.sh(
        _key_script(input.machine_id), "making the restore key", error_type=RESTORE_FAILED
    )
    key_dir = field(said, "dir", "making the restore key", gpu.role)
    public_key = field(said, "pub", "making the restore key", gpu.role)
    comment = restore_comment(input.machine_id)
    line = authorize_line(f'restrict,command="rrsync -ro {STANDBY_WORKSPACE}"', public_key, comment)
    try:
        await standby.sh(
            _standby_script(line), "accepting the restore key", error_type=RESTORE_FAILED
        )
        stats = await gpu.run(
            "sh -s",
            _copy_script(key_dir, known_hosts, source, input.excludes),
            "copying the workspace from the standby",
            error_type=RESTORE_FAILED,
            seconds=COPY_SECONDS,
            ok=RSYNC_OK,
        )
    finally:
        await asyncio.gather(
            standby.sh(
                unauthorize_line(comment), "removing the restore key", error_type=RESTORE_FAILED
            ),
            gpu.sh(
                f"rm -rf {shlex.quote(key_dir)}",
                "removing the restore key",
                error_type=RESTORE_FAILED,
            ),
            return_exceptions=True,  # a copy's own error matters more; a line left is harmless
        )
    theirs, ours = await asyncio.gather(_tree(standby, input.excludes), _tree(gpu, input.excludes))
    if theirs != ours:
        raise ApplicationError(
            f"the restored workspace differs from the standby's: the standby has "
            f"{theirs.describe()}, the GPU machine {ours.describe()}"
            + (
                " (same counts, different contents)" if theirs.describe() == ours.describe() else ""
            ),
            type=RESTORE_FAILED,
        )
    return RestoreFromStandbyResult(
        files=ours.files,
        bytes_total=ours.bytes,
        bytes_received=_received(stats),
        seconds=round(time.monotonic() - started, 3),
        tree_hash=ours.hash,
    )
