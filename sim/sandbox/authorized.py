"""A login user's `~/.ssh/authorized_keys` on a machine, read as OpenSSH's sshd reads it.

asyncssh parses the lines and enforces most options itself once the keys are handed to the
connection (`set_authorized_keys`): `no-pty` (the pty request is refused, the command runs
without one), `no-port-forwarding` and `permitopen` (a `direct-tcpip` open is administratively
prohibited), `no-agent-forwarding`, `no-X11-forwarding`, `from`. Two things it does not do:

* `restrict`, which turns all of those off (OpenSSH's `restrict,pty` gives the pty back): it is
  expanded here into the `no-*` options asyncssh knows.
* `command="..."` without losing the client's command: asyncssh would substitute the forced
  command before the session sees the original, and `SSH_ORIGINAL_COMMAND` is what `rrsync`
  and its kind read. So the command is kept under FORCED_COMMAND and the session runs it
  (ssh.py).

A cloud's guest agent writes some lines itself; `own_lines` and `with_managed` keep the user's
lines apart from those, as google-guest-agent does with its `# Added by Google` line before
each key it manages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import asyncssh

# Where a key's forced command is kept, out of asyncssh's sight (see above).
FORCED_COMMAND = "x-sim-forced-command"
# What `restrict` turns off; each may be given back by naming it (`restrict,pty`).
_RESTRICTED = ("port-forwarding", "pty", "agent-forwarding", "X11-forwarding", "user-rc")


def effective_options(options: Mapping[str, object]) -> dict[str, object]:
    """A matching line's options as the session must apply them."""
    result = dict(options)
    # OpenSSH spells it either way; asyncssh checks only the capitalised form.
    if result.pop("no-x11-forwarding", False):
        result["no-X11-forwarding"] = True
    if result.pop("restrict", False):
        for permission in _RESTRICTED:
            if not result.get(permission):
                result[f"no-{permission}"] = True
    if "command" in result:
        result[FORCED_COMMAND] = result.pop("command")
    return result


class _Keys(asyncssh.SSHAuthorizedKeys):
    """Authorized keys whose matching options come out as `effective_options` makes them."""

    def validate(
        self,
        key: asyncssh.SSHKey,
        client_host: str,
        client_addr: str,
        cert_principals: Sequence[str] | None = None,
        ca: bool = False,
    ) -> Mapping[str, object] | None:
        options = super().validate(key, client_host, client_addr, cert_principals, ca)
        return None if options is None else effective_options(options)


def own_lines(text: str, marker: str | None) -> list[str]:
    """The file's non-empty lines, less each `marker` line and the managed line after it."""
    lines: list[str] = []
    managed = False
    for line in text.splitlines():
        if managed:
            managed = False
        elif marker is not None and line.strip() == marker:
            managed = True
        elif line.strip():
            lines.append(line)
    return lines


def with_managed(text: str, keys: Iterable[str], marker: str) -> str:
    """The file with the user's own lines kept and the managed keys after them, each under
    its marker line (google-guest-agent's layout)."""
    lines = own_lines(text, marker) + [line for key in keys for line in (marker, key)]
    return "".join(f"{line}\n" for line in lines)


def _usable(line: str) -> bool:
    # sshd skips a line it cannot read; asyncssh would reject the whole file for it.
    try:
        asyncssh.import_authorized_keys(line)
    except ValueError:  # KeyImportError too; also a bad option or an unbalanced quote
        return False
    return True


def load(path: Path, managed_marker: str | None = None) -> asyncssh.SSHAuthorizedKeys | None:
    """The keys a login may use from the file at `path`, read now (the file changes while the
    machine runs); the managed lines are left out when `managed_marker` is given (the cloud's
    own record of those keys is checked instead). None: no file, or no usable line."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    usable = [line for line in own_lines(text, managed_marker) if _usable(line.strip())]
    return _Keys("\n".join(usable)) if usable else None
