"""The machine's on-start command, started over SSH with Dumont's key after every boot.

It is started detached (its own session, stdin from /dev/null, output appended to
`~/.dumont/on-start.log`) with the service's environment, from /workspace when there is one,
and the activity returns without waiting for it: only a start that fails at once (within the
settle time) is reported as a failure. The boot id makes a retry find the command it already
started instead of starting a second one.
"""

from __future__ import annotations

import asyncio
import shlex

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.contracts.activities import ActivityName
from core.contracts.errors import ErrorType
from core.contracts.service import RunOnStartInput, RunOnStartResult
from core.ssh import MachineUnreachable, SshIdentity, connect_machine

LOG_TAIL_BYTES = 1500
# What the script prints last: "running", or "exited <status>" followed by the log's end.
_RUNNING = "running"
_EXITED = "exited "


def launch_script(input: RunOnStartInput) -> str:
    """A POSIX sh script (sent on stdin, so the values are in no command line) that starts the
    command once per boot and reports how it is doing after the settle time."""
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in sorted(input.env.items())
    )
    tenths = max(1, round(input.settle_seconds * 10))
    boot = shlex.quote(input.boot_id)
    return f"""\
dir="$HOME/.dumont"
mkdir -p "$dir" || exit 70
log="$dir/on-start.log"; ended="$dir/on-start.exit"; booted="$dir/on-start.boot"
if [ "$(cat "$booted" 2>/dev/null)" != {boot} ]; then
  rm -f "$ended"
  printf '%s\\n' {boot} > "$booted"
  printf '\\n--- on-start, boot %s, %s ---\\n' {boot} "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" >> "$log"
  wc -c < "$log" > "$booted.log-start"
  cd /workspace 2>/dev/null || cd "$HOME"
{exports}  detach=; command -v setsid >/dev/null 2>&1 && detach=setsid
  $detach nohup sh -c '
    if command -v bash >/dev/null 2>&1; then bash -lc "$1"; else sh -c "$1"; fi
    status=$?; echo "$status" > "$2.tmp" && mv "$2.tmp" "$2"' \\
    dumont-on-start {shlex.quote(input.command)} "$ended" </dev/null >>"$log" 2>&1 &
fi
i=0
while [ ! -e "$ended" ] && [ "$i" -lt {tenths} ]; do sleep 0.1; i=$((i + 1)); done
if [ -e "$ended" ]; then
  echo "{_EXITED}$(cat "$ended")"
  # This boot's output only.
  tail -c +"$(( $(cat "$booted.log-start" 2>/dev/null || echo 0) + 1 ))" "$log" \\
    | tail -c {LOG_TAIL_BYTES}
else
  echo {_RUNNING}
fi
"""


def outcome(output: str) -> RunOnStartResult:
    """The script's report as the activity's result."""
    first, _, rest = output.partition("\n")
    if first.strip() == _RUNNING:
        return RunOnStartResult(started=True)
    if first.startswith(_EXITED):
        text = first.removeprefix(_EXITED).strip()
        status = int(text) if text.lstrip("-").isdigit() else None
        if status == 0:
            return RunOnStartResult(started=True, exit_status=0)
        tail = rest.strip()[-LOG_TAIL_BYTES:]
        detail = f"exited with status {text or '?'} at once"
        return RunOnStartResult(
            started=False, exit_status=status, detail=f"{detail}: {tail}" if tail else detail
        )
    return RunOnStartResult(started=False, detail=f"unexpected answer: {output.strip()[-300:]}")


class ServiceActivities:
    def __init__(self, identity: SshIdentity) -> None:
        self._identity = identity

    @activity.defn(name=ActivityName.RUN_ON_START)
    async def run_on_start(self, input: RunOnStartInput) -> RunOnStartResult:
        instance = input.instance
        if instance.ssh_host is None or instance.ssh_port is None:
            raise ApplicationError("the machine has no SSH address", type=ErrorType.INSTANCE_GONE)
        try:
            async with connect_machine(
                self._identity, instance.ssh_host, instance.ssh_port, instance.ssh_user
            ) as conn:
                result = await asyncio.wait_for(
                    conn.run("sh -s", input=launch_script(input), check=False),
                    input.settle_seconds + 30,
                )
        except MachineUnreachable as exc:
            raise ApplicationError(str(exc), type=ErrorType.MACHINE_UNREACHABLE) from exc
        except TimeoutError as exc:
            raise ApplicationError(
                "the machine did not answer while starting the on-start",
                type=ErrorType.MACHINE_UNREACHABLE,
            ) from exc
        stdout = result.stdout
        output = stdout.decode(errors="replace") if isinstance(stdout, bytes) else str(stdout or "")
        if result.exit_status != 0:
            stderr = result.stderr
            error = stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)
            return RunOnStartResult(
                started=False,
                detail=f"could not start it (status {result.exit_status}): "
                f"{(error or output).strip()[-300:]}",
            )
        found = outcome(output)
        activity.logger.info("on-start of %s: %s", input.machine_id, found)
        return found
