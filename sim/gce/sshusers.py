"""GCE's SSH model: the users named in the `ssh-keys` metadata, each with its own keys.

Each line of `ssh-keys` (or the legacy `sshKeys`) is `USER:KEY_TYPE KEY [COMMENT]`; the
guest agent makes USER an account with passwordless sudo. Root never logs in (GCE images set
PermitRootLogin no), even when listed.
"""

from __future__ import annotations

import re
from pathlib import Path

from sim.sandbox.ssh import normalise_public_key

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


def prepare_homes(home_root: Path, users: dict[str, set[str]]) -> None:
    """Each metadata user's home with its .ssh/authorized_keys, as the guest agent makes."""
    for user, keys in users.items():
        ssh_dir = home_root / user / ".ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text("".join(f"{key}\n" for key in sorted(keys)))


def install_sudo(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "sudo"
    if not shim.exists() or shim.read_text() != SUDO_SHIM:
        shim.write_text(SUDO_SHIM)
        shim.chmod(0o755)
