"""GCE's SSH model: the users named in the `ssh-keys` metadata, each with its own keys.

Each line of `ssh-keys` (or the legacy `sshKeys`) is `USER:KEY_TYPE KEY [COMMENT]`; the
guest agent makes USER an account with passwordless sudo and writes the keys into USER's
`~/.ssh/authorized_keys`, each under a `# Added by Google` line, keeping the lines it did not
write (a key added there by hand logs USER in too, with its options). Root never logs in (GCE
images set PermitRootLogin no), even when listed.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncssh

from sim.sandbox import authorized
from sim.sandbox.ssh import normalise_public_key

# google-guest-agent's line before each key it manages in a user's authorized_keys.
GOOGLE_MARKER = "# Added by Google"
KEY_ITEMS = ("ssh-keys", "sshKeys")
_USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")

# `sudo` for metadata users: the sandbox already runs as the sim's uid, so it only has to
# accept sudo's usual flags and run what follows (or a shell for -i / -s).
SUDO_SHIM = """#!/bin/sh
# sudo on a sim machine: passwordless, as GCE gives metadata users.
login=""
while [ $# -gt 0 ]; do
  case "$1" in
    -i|--login) login=1; shift ;;
    -s|--shell) login=${login:-shell}; shift ;;
    -u|--user|-g|--group|-p|--prompt|-C|-h|--host) shift 2 ;;
    -u*|-g*) shift ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
export SUDO_USER="${USER:-}"
export USER=root LOGNAME=root
if [ $# -eq 0 ]; then
  [ -n "$login" ] && exec /bin/bash -l
  echo "usage: sudo [-n] [-E] [-H] [-u user] [-i | -s] [command]" >&2
  exit 1
fi
if [ "$login" = 1 ]; then exec /bin/bash -lc "$*"; fi
exec "$@"
"""

# `chown` for metadata users: they have no passwd entry on the sim's host (the sim never
# touches the host's accounts), so `sudo chown dumont /workspace` names the sim's own uid,
# which every sandbox process already runs as. Owners the host knows are left alone.
CHOWN_SHIM = """#!/bin/bash
# chown on a sim machine: a user or group the host does not know is the sim's own uid / gid.
[[ " $* " == *" --reference"* ]] && exec /bin/chown "$@"
args=() owner=""
for arg in "$@"; do
  if [ -z "$owner" ] && [ "${arg#-}" = "$arg" ]; then  # the first operand: OWNER[:GROUP]
    owner=1 user=${arg%%:*} group=""
    [ "$user" != "$arg" ] && group=${arg#*:}
    [ -n "$user" ] && ! id -u "$user" >/dev/null 2>&1 && user=$(id -u)
    [ -n "$group" ] && ! getent group "$group" >/dev/null && group=$(id -g)
    arg=$user${group:+:$group}
  fi
  args+=("$arg")
done
exec /bin/chown "${args[@]}"
"""


def users_from_metadata(items: list[dict[str, str]]) -> dict[str, set[str]]:
    """USER -> the keys listed for USER (normalised, comments dropped); bad lines skipped."""
    users: dict[str, set[str]] = {}
    for item in items:
        if item.get("key") not in KEY_ITEMS:
            continue
        for line in (item.get("value") or "").splitlines():
            user, sep, key = line.strip().partition(":")
            if not sep or not _USERNAME.match(user):
                continue
            try:
                users.setdefault(user, set()).add(normalise_public_key(key))
            except ValueError:
                continue
    return users


def may_log_in(users: dict[str, set[str]], username: str, key: str) -> bool:
    return username != "root" and key in users.get(username, set())


def authorized_keys_file(home_root: Path, user: str) -> Path:
    return home_root / user / ".ssh" / "authorized_keys"


def prepare_homes(home_root: Path, users: dict[str, set[str]]) -> None:
    """Each metadata user's home with its .ssh/authorized_keys, as the guest agent makes: the
    metadata keys rewritten, the user's own lines kept."""
    for user, keys in users.items():
        path = authorized_keys_file(home_root, user)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            current = path.read_text()
        except (OSError, UnicodeDecodeError):
            current = ""
        text = authorized.with_managed(current, sorted(keys), GOOGLE_MARKER)
        if text != current:
            tmp = path.with_name(".authorized_keys.tmp")
            tmp.write_text(text)
            tmp.chmod(0o600)
            tmp.replace(path)  # a login reading it meanwhile sees the old file or the new one


def own_keys(
    home_root: Path, users: dict[str, set[str]], username: str
) -> asyncssh.SSHAuthorizedKeys | None:
    """The keys `username` added to its own authorized_keys (the metadata's are checked
    against the live metadata instead); root and users not in the metadata have none."""
    if username == "root" or username not in users:
        return None
    return authorized.load(authorized_keys_file(home_root, username), GOOGLE_MARKER)


def install_shims(bin_dir: Path) -> None:
    """`sudo` and `chown` as a metadata user needs them, first on the sessions' PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("sudo", SUDO_SHIM), ("chown", CHOWN_SHIM)):
        shim = bin_dir / name
        if not shim.exists() or shim.read_text() != text:
            shim.write_text(text)
            shim.chmod(0o755)
