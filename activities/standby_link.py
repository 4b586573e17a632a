"""The sync's setup, teardown and one sync now, as scripts on the two machines.

Link: the GPU machine makes the sync key itself (the private half never leaves it: only the
`.pub` is read back), the standby accepts that key only for `rrsync` into its workspace, and
the agent's sync file on the GPU machine names the standby, its host key pinned in a
known_hosts file next to the key. Every step is idempotent: a second link replaces the
standby's line for this machine and rewrites the sync file.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime

from temporalio.exceptions import ApplicationError

from activities.standby_shell import (
    EXIT_HOPELESS,
    GPU_TOOLS,
    MAKE_AGENT_DIR,
    STANDBY_TOOLS,
    SUDO,
    Remote,
    authorize_line,
    ensure_tools,
    field,
    fields,
    find_file_dir,
)
from core.contracts.standby import (
    STANDBY_WORKSPACE,
    LinkStandbyInput,
    LinkStandbyResult,
    SyncOutcome,
)

SYNC_FILE = "sync.json"
SYNC_KEY = "sync/id_ed25519"
SYNC_KNOWN_HOSTS = "sync/known_hosts"
# The first sync of a big workspace may take long; the activity's own timeout bounds it.
SYNC_NOW_SECONDS = 6 * 3600.0
LINK_FAILED = "StandbyLinkFailed"
SYNC_FAILED = "SyncFailed"


def sync_comment(machine_id: str) -> str:
    return f"dumont-sync-{machine_id}"


def _gpu_key_script(machine_id: str) -> str:
    """Tools, the agent directory and the sync key pair; prints `dir:` and `pub:`."""
    comment = shlex.quote(sync_comment(machine_id))
    return "\n".join(
        [
            "set -e",
            SUDO,
            ensure_tools(GPU_TOOLS, "the GPU machine"),
            MAKE_AGENT_DIR,
            'mkdir -p "$d/sync" && chmod 700 "$d/sync"',
            f'k="$d/{SYNC_KEY}"',
            '[ -f "$k" ] && [ -f "$k.pub" ] || '
            f'{{ rm -f "$k" "$k.pub"; ssh-keygen -q -t ed25519 -N "" -C {comment} -f "$k"; }}'
            " </dev/null >/dev/null",
            'chmod 600 "$k"',
            'echo "dir: $d"',
            'echo "pub: $(cat "$k.pub")"',
        ]
    )


def _standby_script(line_script: str) -> str:
    """Tools, the workspace owned by the login user, and the key's line."""
    workspace = shlex.quote(STANDBY_WORKSPACE)
    return "\n".join(
        [
            "set -e",
            SUDO,
            ensure_tools(STANDBY_TOOLS, "the standby"),
            f"$S mkdir -p {workspace}",
            f'$S chown "$(id -u):$(id -g)" {workspace}',
            line_script,
        ]
    )


def sync_file(
    input: LinkStandbyInput, agent_dir: str, host: str, port: int, user: str
) -> dict[str, object]:
    """The agent's sync.json (its format: the agent's sync module)."""
    return {
        "machine_id": input.machine_id,
        "workspace": STANDBY_WORKSPACE,
        "target": {"host": host, "port": port, "user": user, "path": STANDBY_WORKSPACE},
        "key_file": f"{agent_dir}/{SYNC_KEY}",
        "known_hosts_file": f"{agent_dir}/{SYNC_KNOWN_HOSTS}",
        "interval_seconds": input.interval_seconds,
        "excludes": list(input.excludes),
    }


def _write_files_script(agent_dir: str, sync_json: str, known_hosts: str) -> str:
    """known_hosts, then sync.json (the agent reads it at its next tick), each atomically."""
    d = shlex.quote(agent_dir)
    return "\n".join(
        [
            "set -e",
            "umask 077",
            f"printf '%s\\n' {shlex.quote(known_hosts)} > {d}/{SYNC_KNOWN_HOSTS}.tmp",
            f"mv -f {d}/{SYNC_KNOWN_HOSTS}.tmp {d}/{SYNC_KNOWN_HOSTS}",
            f"printf '%s\\n' {shlex.quote(sync_json)} > {d}/{SYNC_FILE}.tmp",
            f"mv -f {d}/{SYNC_FILE}.tmp {d}/{SYNC_FILE}",
        ]
    )


async def link(
    input: LinkStandbyInput,
    gpu: Remote,
    standby: Remote,
    target: tuple[str, int, str],
    known_hosts: str,
) -> LinkStandbyResult:
    """Set the sync up; `target` is the standby's SSH address, `known_hosts` its host key
    line as Dumont saw it."""
    said = await gpu.sh(
        _gpu_key_script(input.machine_id), "making the sync key", error_type=LINK_FAILED
    )
    agent_dir = field(said, "dir", "making the sync key", gpu.role)
    public_key = field(said, "pub", "making the sync key", gpu.role)
    options = f'restrict,command="rrsync {STANDBY_WORKSPACE}"'
    line = authorize_line(options, public_key, sync_comment(input.machine_id))
    answered = await standby.sh(
        _standby_script(line), "accepting the sync key", error_type=LINK_FAILED
    )
    host, port, user = target
    sync_json = json.dumps(sync_file(input, agent_dir, host, port, user), indent=1)
    await gpu.sh(
        _write_files_script(agent_dir, sync_json, known_hosts),
        "writing the sync file",
        error_type=LINK_FAILED,
    )
    installed = fields(said, "installed") + fields(answered, "installed")
    return LinkStandbyResult(
        installed=installed,
        detail=f"{agent_dir}/{SYNC_FILE} pushes to {user}@{host}:{port}",
    )


def _unlink_script() -> str:
    return "\n".join(
        [
            find_file_dir(SYNC_FILE),
            'if [ -z "$d" ]; then echo "gone: no sync file"; exit 0; fi',
            f'rm -f "$d/{SYNC_FILE}"',
            f'echo "gone: removed $d/{SYNC_FILE}"',
        ]
    )


async def unlink(gpu: Remote) -> str:
    said = await gpu.sh(_unlink_script(), "removing the sync file", error_type=LINK_FAILED)
    return field(said, "gone", "removing the sync file", gpu.role)


def _sync_now_script() -> str:
    return "\n".join(
        [
            find_file_dir(SYNC_FILE),
            '[ -n "$d" ] || { echo "no sync file: the standby is not linked" >&2; '
            f"exit {EXIT_HOPELESS}; }}",
            'cd "$d"',
            '[ -f agent/sync.py ] || { echo "the agent in $d has no sync module" >&2; '
            f"exit {EXIT_HOPELESS}; }}",
            f'exec python3 -m agent.sync --config "$d/{SYNC_FILE}" --once',
        ]
    )


async def sync_now(gpu: Remote) -> SyncOutcome:
    said = await gpu.sh(
        _sync_now_script(), "the sync", error_type=SYNC_FAILED, seconds=SYNC_NOW_SECONDS
    )
    lines = [line for line in said.splitlines() if line.startswith("{")]
    try:
        outcome = json.loads(lines[-1])
        return SyncOutcome(
            completed_at=datetime.fromisoformat(outcome["completed_at"]),
            seconds=float(outcome["seconds"]),
            bytes_sent=int(outcome["bytes_sent"]),
        )
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise ApplicationError(
            f"the sync on the {gpu.role} answered {said[-300:]!r}, not its outcome",
            type=SYNC_FAILED,
        ) from exc
