"""What the standby activities run on the two machines: an SSH session with Dumont's key per
machine, POSIX sh scripts sent on stdin (values in them are quoted, never in a command line),
and the pieces those scripts share (sudo when not root, tools installed with apt-get when
missing, the agent's directory found as its installer chooses it)."""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncssh
from temporalio.exceptions import ApplicationError

from agent.install import CONFIG, INSTALL_DIRS
from core.contracts.errors import ErrorType
from core.contracts.machine import InstanceInfo
from core.ssh import MachineUnreachable, SshIdentity, connect_machine

SSH_CONNECT_SECONDS = 30.0
# A script may install packages (apt-get update + install): minutes on a slow mirror.
SCRIPT_SECONDS = 600.0
STDERR_TAIL = 1500
# Exit status of a script that met a problem no retry will fix.
EXIT_HOPELESS = 3
_MACHINE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

# What each end needs (Debian package -> its commands). rrsync is a Python script that comes
# with Debian's rsync; ssh-keygen makes the keys on the GPU machine.
GPU_TOOLS = {"rsync": ("rsync",), "openssh-client": ("ssh", "ssh-keygen")}
STANDBY_TOOLS = {"rsync": ("rsync", "rrsync"), "python3": ("python3",)}

# `$S` runs a command as root: nothing when the login user is root, else passwordless sudo.
SUDO = 'if [ "$(id -u)" = 0 ]; then S=; else S="sudo -n"; fi'


def find_file_dir(name: str) -> str:
    """Script lines setting `$d` to the agent directory holding `name` (empty when none)."""
    dirs = " ".join(f'"{d}"' for d in INSTALL_DIRS)
    return f'd=; for c in {dirs}; do if [ -f "$c/{name}" ]; then d=$c; break; fi; done'


# `$d`: the agent's directory: the one holding its config, else the first the installer
# could use (created, as the installer makes it).
MAKE_AGENT_DIR = "\n".join(
    [
        find_file_dir(CONFIG),
        '[ -n "$d" ] || for c in ' + " ".join(f'"{d}"' for d in INSTALL_DIRS) + "; do",
        '  if mkdir -p "$c" 2>/dev/null && [ -w "$c" ] && chmod 700 "$c"; then d=$c; break; fi',
        "done",
        '[ -n "$d" ] || { echo "no writable agent directory" >&2; exit 1; }',
    ]
)


def ensure_tools(tools: dict[str, tuple[str, ...]], where: str) -> str:
    """Script lines that install each Debian package (-> the commands it provides) whose
    commands are missing, with apt-get, printing `installed: PKG on WHERE` for each."""
    lines = ["missing="]
    for package, commands in tools.items():
        found = " && ".join(f"command -v {c}" for c in commands)
        lines.append(f'{{ {found}; }} >/dev/null 2>&1 || missing="$missing {package}"')
    lines += [
        'if [ -n "$missing" ]; then',
        "  command -v apt-get >/dev/null 2>&1 || "
        f'{{ echo "missing:$missing, and no apt-get to install it" >&2; exit {EXIT_HOPELESS}; }}',
        "  export DEBIAN_FRONTEND=noninteractive",
        "  { $S apt-get update -qq && $S apt-get install -y -qq --no-install-recommends"
        " $missing; } >/dev/null 2>&1 </dev/null"
        ' || { echo "installing$missing with apt-get failed" >&2; exit 1; }',
        f'  for p in $missing; do echo "installed: $p on {where}"; done',
        "fi",
    ]
    for package, commands in tools.items():
        for command in commands:
            lines.append(
                f"command -v {command} >/dev/null 2>&1 || "
                f'{{ echo "{command} is missing on {where}, even with {package} installed" >&2; '
                f"exit {EXIT_HOPELESS}; }}"
            )
    return "\n".join(lines)


def authorize_line(options: str, public_key: str, comment: str) -> str:
    """Script lines putting `OPTIONS TYPE BASE64 COMMENT` in the login user's authorized_keys
    in place of any line with the same comment, atomically (a half-written file would lock
    Dumont's own key out on a machine that reads keys from it)."""
    kind, blob = public_key.split()[:2]
    line = f"{options} {kind} {blob} {comment}"
    return "\n".join(
        [
            'mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"',
            'f="$HOME/.ssh/authorized_keys"; touch "$f"',
            't=$(mktemp "$f.XXXXXX")',
            f'awk -v c={shlex.quote(comment)} \'$NF != c\' "$f" > "$t"',
            f"printf '%s\\n' {shlex.quote(line)} >> \"$t\"",
            'chmod 600 "$t" && mv -f "$t" "$f"',
        ]
    )


def unauthorize_line(comment: str) -> str:
    """Script lines removing the authorized_keys line with this comment, if any."""
    return "\n".join(
        [
            'f="$HOME/.ssh/authorized_keys"',
            'if [ -f "$f" ]; then',
            '  t=$(mktemp "$f.XXXXXX")',
            f'  awk -v c={shlex.quote(comment)} \'$NF != c\' "$f" > "$t"',
            '  chmod 600 "$t" && mv -f "$t" "$f"',
            "fi",
        ]
    )


def known_hosts_line(host: str, port: int, conn: asyncssh.SSHClientConnection) -> str:
    """The standby's host key as seen by Dumont, for the GPU machine's known_hosts: the GPU
    then trusts exactly the key Dumont reached (the provider vouches for the address)."""
    host_key = conn.get_server_host_key()
    if host_key is None:  # only without a key exchange, which SSH always has
        raise ApplicationError("the standby showed no host key", type=ErrorType.MACHINE_UNREACHABLE)
    kind, blob = host_key.export_public_key().decode().split()[:2]
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {kind} {blob}"


def checked_machine_id(machine_id: str) -> str:
    """Machine ids go into key comments and file names: refuse anything unexpected."""
    if not _MACHINE_ID.fullmatch(machine_id):
        raise ApplicationError(
            f"invalid machine id {machine_id!r}", type=ErrorType.INVALID_INPUT, non_retryable=True
        )
    return machine_id


def address(info: InstanceInfo, role: str) -> tuple[str, int, str]:
    if not info.ssh_host or not info.ssh_port:
        raise ApplicationError(
            f"the {role} ({info.provider} {info.instance_id}) has no SSH address",
            type=ErrorType.MACHINE_UNREACHABLE,
        )
    return info.ssh_host, info.ssh_port, info.ssh_user


@dataclass
class Remote:
    """One machine's SSH session, and the word for it in errors ("the GPU machine")."""

    conn: asyncssh.SSHClientConnection
    role: str

    async def sh(
        self,
        script: str,
        what: str,
        *,
        error_type: str,
        seconds: float = SCRIPT_SECONDS,
    ) -> str:
        """Run a script with `sh -s`; its stdout, or an ApplicationError of `error_type` with
        its stderr (non-retryable when it exits EXIT_HOPELESS)."""
        return await self.run("sh -s", script, what, error_type=error_type, seconds=seconds)

    async def run(
        self,
        command: str,
        stdin: str,
        what: str,
        *,
        error_type: str,
        seconds: float = SCRIPT_SECONDS,
        ok: tuple[int, ...] = (0,),
    ) -> str:
        try:
            result = await self.conn.run(command, input=stdin, check=False, timeout=seconds)
        except asyncssh.TimeoutError as exc:
            raise ApplicationError(
                f"{what} on the {self.role} did not finish in {seconds:.0f} s", type=error_type
            ) from exc
        except (OSError, asyncssh.Error) as exc:
            raise ApplicationError(
                f"{what} on the {self.role}: the SSH session failed: {exc}",
                type=ErrorType.MACHINE_UNREACHABLE,
            ) from exc
        if result.exit_status not in ok:
            stderr = _text(result.stderr).strip()[-STDERR_TAIL:]
            raise ApplicationError(
                f"{what} on the {self.role} failed (exit {result.exit_status}): "
                f"{stderr or 'no message'}",
                type=error_type,
                non_retryable=result.exit_status == EXIT_HOPELESS,
            )
        return _text(result.stdout)


@contextlib.asynccontextmanager
async def reach(identity: SshIdentity, info: InstanceInfo, role: str) -> AsyncIterator[Remote]:
    host, port, user = address(info, role)
    try:
        async with connect_machine(identity, host, port, user, SSH_CONNECT_SECONDS) as conn:
            yield Remote(conn, role)
    except MachineUnreachable as exc:
        raise ApplicationError(f"the {role}: {exc}", type=ErrorType.MACHINE_UNREACHABLE) from exc


def fields(output: str, key: str) -> list[str]:
    """The values of the script's `key: value` lines."""
    prefix = f"{key}: "
    return [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]


def field(output: str, key: str, what: str, role: str) -> str:
    found = fields(output, key)
    if not found:
        raise ApplicationError(
            f"{what} on the {role}: no {key} in its answer", type=ErrorType.MACHINE_UNREACHABLE
        )
    return found[-1]


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
