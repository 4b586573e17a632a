"""What the control plane sends to a machine to install and (re)start the agent, in ONE command
over one SSH channel: `install_command()` reads a tar.gz of `agent_files()` plus config.json on
its stdin (`agent_archive()`), unpacks it into the first writable install directory, stops any
previous agent and its watchdog, starts a fresh watchdog detached from the SSH session, and
waits until the new agent has read its config and says it is running (`agent.ready`), printing
the install directory last. Running it again leaves exactly one watchdog and one agent.

One command, not an SFTP session plus separate checks: a machine pays one SSH channel and one
Python start per install (a fleet booting at once installs fifty agents together).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

INSTALL_DIRS = ("/opt/dumont-agent", "$HOME/.dumont-agent")
WATCHDOG = "watchdog.sh"
CONFIG = "config.json"
READY = "agent.ready"
# How long the new agent has to read its config and say it runs.
START_TENTHS = 100
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
    python3 -m agent --config "$PWD/config.json" --log-file "$PWD/agent.log" \
        --ready-file "$PWD/agent.ready" >>agent.err 2>&1 &
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


def agent_archive(config_json: bytes) -> bytes:
    """The files to install, with their modes (the config holds the token: 600), as tar.gz."""
    files = agent_files()
    files[CONFIG] = config_json
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            member.mode = 0o600 if name == CONFIG else 0o644
            archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


_CHOOSE_DIR = (
    "d=; for c in "
    + " ".join(f'"{d}"' for d in INSTALL_DIRS)
    + '; do if mkdir -p "$c" 2>/dev/null && [ -w "$c" ] && chmod 700 "$c"; then d=$c; break; fi; '
    "done\n"
    '[ -n "$d" ] || { echo "dumont-agent: no writable install directory" >&2; exit 1; }'
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


def install_command() -> str:
    """The shell command that installs the archive on its stdin and (re)starts the agent;
    prints the install directory last."""
    return "\n".join(
        [
            "set -e",
            _CHOOSE_DIR,
            'cd "$d"',
            "command -v python3 >/dev/null 2>&1 || "
            '{ echo "dumont-agent: no python3 on the machine" >&2; exit 3; }',
            "command -v tar >/dev/null 2>&1 || "
            '{ echo "dumont-agent: no tar on the machine" >&2; exit 3; }',
            "umask 077",
            "tar -xzf -",
            f"chmod 600 {CONFIG}",
            _STOP,
            f'stop watchdog.pid "$PWD/{WATCHDOG}"',
            f'stop agent.pid "$PWD/{CONFIG}"',
            f"rm -f {READY} agent.pid",
            "if command -v setsid >/dev/null 2>&1; then detach=setsid; else detach=; fi",
            f'$detach nohup sh "$PWD/{WATCHDOG}" >/dev/null 2>&1 </dev/null &',
            "i=0",
            # The agent writes its pid to agent.ready once it has read its config.
            f'while [ "$i" -lt {START_TENTHS} ]; do',
            "    pid=$(cat agent.pid 2>/dev/null || true)",
            f'    if [ -n "$pid" ] && [ "$(cat {READY} 2>/dev/null)" = "$pid" ] \\',
            '        && kill -0 "$pid" 2>/dev/null; then',
            '        echo "dumont-agent running: pid $pid"; echo "$d"; exit 0',
            "    fi",
            # Exited before it was ready: a crash at start, not worth the whole wait.
            '    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi',
            "    sleep 0.1; i=$((i + 1))",
            "done",
            # It did not start: leave nothing restarting it, and say why.
            f'stop watchdog.pid "$PWD/{WATCHDOG}"',
            f'stop agent.pid "$PWD/{CONFIG}"',
            'echo "dumont-agent did not start" >&2',
            "tail -n 20 agent.err >&2 2>/dev/null || true",
            "tail -n 5 agent.log >&2 2>/dev/null || true",
            "exit 1",
        ]
    )
