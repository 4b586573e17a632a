"""What the control plane sends to a machine to install and (re)start the agent.

The files go up by SFTP first (`agent_files()` plus config.json), into the directory that
`choose_dir_command()` prints; then `install_command(dir)` stops any previous agent and its
watchdog, checks the new one imports and reads its config, and starts a fresh watchdog detached
from the SSH session. Running it again leaves exactly one watchdog and one agent.
"""

from __future__ import annotations

import shlex
from pathlib import Path

INSTALL_DIRS = ("/opt/dumont-agent", "$HOME/.dumont-agent")
WATCHDOG = "watchdog.sh"
CONFIG = "config.json"
# Modules the machine never needs: the control plane's side imports asyncssh.
_NOT_UPLOADED = frozenset({"deploy.py"})

# Restarts the agent 2 s after it exits, whatever the reason; TERM ends both.
WATCHDOG_SCRIPT = """\
#!/bin/sh
cd "$(dirname "$0")" || exit 1
echo $$ > watchdog.pid
child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT HUP
while true; do
    python3 -m agent --config "$PWD/config.json" --log-file "$PWD/agent.log" >>agent.err 2>&1 &
    child=$!
    echo "$child" > agent.pid
    wait "$child"
    child=
    # agent.err only holds crash traces; a crash loop must not fill the disk.
    [ "$(wc -c < agent.err)" -gt 1000000 ] && : > agent.err
    sleep 2
done
"""


def agent_files() -> dict[str, bytes]:
    """Relative path in the install directory → content, for every file to upload."""
    package = Path(__file__).resolve().parent
    files = {
        f"agent/{path.name}": path.read_bytes()
        for path in sorted(package.glob("*.py"))
        if path.name not in _NOT_UPLOADED
    }
    files[WATCHDOG] = WATCHDOG_SCRIPT.encode()
    return files


def choose_dir_command() -> str:
    """Creates the first writable install directory (mode 700: it holds the token), prints it."""
    candidates = " ".join(f'"{d}"' for d in INSTALL_DIRS)
    return (
        f"for d in {candidates}; do "
        'if mkdir -p "$d" 2>/dev/null && [ -w "$d" ] && chmod 700 "$d"; '
        'then echo "$d"; exit 0; fi; '
        "done; "
        'echo "dumont-agent: no writable install directory" >&2; exit 1'
    )


# stop PIDFILE MARKER: end the process (its whole group when it leads one) if its command line
# still names MARKER, so a recycled pid is never killed.
_STOP = r"""
stop() {
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    rm -f "$1"
    case "$pid" in ''|*[!0-9]*) return 0 ;; esac
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$2" || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
"""


def install_command(install_dir: str) -> str:
    """The shell command that (re)starts the agent from files already uploaded to install_dir."""
    d = shlex.quote(install_dir)
    return "\n".join(
        [
            "set -e",
            f"cd {d}",
            "command -v python3 >/dev/null 2>&1 || "
            '{ echo "dumont-agent: no python3 on the machine" >&2; exit 3; }',
            f"chmod 600 {CONFIG}",
            _STOP,
            f'stop watchdog.pid "$PWD/{WATCHDOG}"',
            f'stop agent.pid "$PWD/{CONFIG}"',
            # Fails here, with the reason on stderr, when python3 is too old or the config bad.
            f'python3 -m agent --config "$PWD/{CONFIG}" --check',
            "if command -v setsid >/dev/null 2>&1; then detach=setsid; else detach=; fi",
            f'$detach nohup sh "$PWD/{WATCHDOG}" >/dev/null 2>&1 </dev/null &',
            "i=0",
            # The watchdog writes agent.pid once the agent runs.
            'while [ "$i" -lt 100 ]; do',
            "    pid=$(cat agent.pid 2>/dev/null || true)",
            '    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then',
            '        echo "dumont-agent running: pid $pid"; exit 0',
            "    fi",
            "    sleep 0.1; i=$((i + 1))",
            "done",
            'echo "dumont-agent did not start" >&2; tail -n 20 agent.err >&2 2>/dev/null; exit 1',
        ]
    )
