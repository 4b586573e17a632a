"""The activity a schedule's trigger workflow calls: send the machine workflow its `wake` or
`hibernate` update (`resume` or `pause` for a schedule in pause mode) and wait until it is
done.

A machine whose state makes the action pointless (already hibernated, waking, destroyed) is
skipped, not failed: a daily schedule should not light up red because the user hibernated by
hand before 18:00.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.contracts.errors import ErrorType
from core.contracts.hibernation import HibernateInput, WakeInput
from core.contracts.schedules import (
    SEND_SCHEDULED_ACTION,
    ScheduleKind,
    ScheduleMode,
    ScheduleTriggerInput,
    ScheduleTriggerResult,
)
from core.contracts.standby import MigrateInput, Side
from workflows.client import (
    ActionFailed,
    ActionRejected,
    LifecycleAction,
    MachineClient,
    MachineDestroyed,
    MachineNotFound,
)

T = TypeVar("T")

HEARTBEAT_EVERY = timedelta(seconds=10)
# Rejections that mean "nothing to do now", not "something broke".
SKIP_TYPES = frozenset({ErrorType.INVALID_TRANSITION, ErrorType.SUPERSEDED})


async def _heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating meanwhile; a cancelled activity cancels the wait."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY.total_seconds())
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()


class ScheduleTriggerActivities:
    def __init__(self, machines: MachineClient) -> None:
        self._machines = machines

    @activity.defn(name=SEND_SCHEDULED_ACTION)
    async def send_scheduled_action(self, input: ScheduleTriggerInput) -> ScheduleTriggerResult:
        def skipped(why: str) -> ScheduleTriggerResult:
            activity.logger.info(
                "scheduled %s of %s skipped: %s", input.kind, input.machine_id, why
            )
            return ScheduleTriggerResult(
                machine_id=input.machine_id,
                kind=input.kind,
                skipped=True,
                outcome=f"skipped: {why}",
            )

        # One update id per trigger run: a retried activity attaches to the update already
        # sent. (The workflow id alone is not enough: two fires in one second share it.)
        info = activity.info()
        update_id = f"{info.workflow_id}/{info.workflow_run_id}"
        machines, machine_id = self._machines, input.machine_id
        try:
            if input.mode is ScheduleMode.PAUSE:
                action: LifecycleAction = "resume" if input.kind is ScheduleKind.WAKE else "pause"
                acted = await _heartbeating(
                    machines.act(
                        machine_id, action, reason=input.reason, wait=True, update_id=update_id
                    )
                )
                state = acted.state
            elif input.kind is ScheduleKind.WAKE:
                woken = await _heartbeating(
                    machines.wake(
                        machine_id, WakeInput(reason=input.reason), wait=True, update_id=update_id
                    )
                )
                state = woken.state
            else:
                hibernated = await _heartbeating(
                    machines.hibernate(
                        machine_id,
                        HibernateInput(reason=input.reason),
                        wait=True,
                        update_id=update_id,
                    )
                )
                state = hibernated.state
        except ActionRejected as err:
            if err.type == ErrorType.ON_STANDBY and input.kind is ScheduleKind.WAKE:
                # Parked on its standby (idle, or migrated): the day begins back on a GPU.
                return await self._back_to_gpu(input, update_id)
            if err.type in SKIP_TYPES:
                return skipped(err.problem)
            raise _failed(input.kind, err.problem) from err
        except ActionFailed as err:
            raise _failed(input.kind, err.problem) from err
        except MachineDestroyed:
            return skipped(f"machine {machine_id} is destroyed")
        except MachineNotFound:
            return skipped(f"machine {machine_id} not found")
        # Anything else (Temporal trouble, a wait that ran out) fails this attempt: the retry
        # attaches to the same update.
        return ScheduleTriggerResult(
            machine_id=machine_id, kind=input.kind, skipped=False, outcome=state.value
        )

    async def _back_to_gpu(
        self, input: ScheduleTriggerInput, update_id: str
    ) -> ScheduleTriggerResult:
        try:
            moved = await _heartbeating(
                self._machines.migrate(
                    input.machine_id,
                    MigrateInput(to=Side.GPU, reason=input.reason),
                    wait=True,
                    update_id=f"{update_id}/migrate",
                )
            )
        except (ActionRejected, ActionFailed) as err:
            raise _failed(input.kind, err.problem) from err
        return ScheduleTriggerResult(
            machine_id=input.machine_id,
            kind=input.kind,
            skipped=False,
            outcome=f"{moved.state.value} (back from its standby)",
        )


def _failed(kind: ScheduleKind, problem: str) -> ApplicationError:
    """The trigger failed for good: the machine accepted the action and could not do it."""
    return ApplicationError(
        f"scheduled {kind} failed: {problem}",
        type=ErrorType.SCHEDULED_ACTION_FAILED,
        non_retryable=True,
    )
