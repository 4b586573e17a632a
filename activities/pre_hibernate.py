"""The user's pre-hibernate hook: a command run on the machine before its snapshot (e.g. to
save a training checkpoint), with a time limit. Its outcome is data, not an exception: the
workflow decides, per config, whether a failure aborts the hibernate."""

from __future__ import annotations

import asyncio
import shlex

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.contracts.activities import ActivityName
from core.contracts.errors import ErrorType
from core.contracts.hibernation import PreHibernateInput, PreHibernateResult
from core.ssh import MachineUnreachable, SshIdentity, connect_machine

OUTPUT_TAIL = 1500


def _tail(text: str) -> str:
    return text[-OUTPUT_TAIL:].strip()


class PreHibernateActivities:
    def __init__(self, identity: SshIdentity) -> None:
        self._identity = identity

    @activity.defn(name=ActivityName.RUN_PRE_HIBERNATE)
    async def run_pre_hibernate(self, input: PreHibernateInput) -> PreHibernateResult:
        instance = input.instance
        if instance.ssh_host is None or instance.ssh_port is None:
            raise ApplicationError("the machine has no SSH address", type=ErrorType.INSTANCE_GONE)
        # In the workspace, with a login shell's PATH; `timeout` kills it on the machine too.
        command = (
            f"cd /workspace 2>/dev/null; timeout -k 5 {input.timeout_seconds} "
            f"bash -lc {shlex.quote(input.command)}"
        )
        try:
            async with connect_machine(
                self._identity, instance.ssh_host, instance.ssh_port, instance.ssh_user
            ) as conn:
                try:
                    result = await asyncio.wait_for(
                        conn.run(command, check=False), input.timeout_seconds + 30
                    )
                except TimeoutError:
                    return PreHibernateResult(
                        ok=False,
                        exit_status=None,
                        output=f"timed out after {input.timeout_seconds} s",
                    )
        except MachineUnreachable as exc:
            raise ApplicationError(str(exc), type=ErrorType.MACHINE_UNREACHABLE) from exc
        output = "".join(
            part.decode(errors="replace") if isinstance(part, bytes) else str(part or "")
            for part in (result.stdout, result.stderr)
        )
        status = result.exit_status
        if status == 124:
            return PreHibernateResult(
                ok=False, exit_status=status, output=f"timed out after {input.timeout_seconds} s"
            )
        return PreHibernateResult(ok=status == 0, exit_status=status, output=_tail(output))
