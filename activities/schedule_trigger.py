"""The activity a schedule's trigger workflow calls: send the machine workflow its `wake` or
`hibernate` update and wait until it is done.

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
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import machine_workflow_id
from core.contracts.errors import ErrorType
from core.contracts.hibernation import HibernateInput, WakeInput
from core.contracts.schedules import (
    SEND_SCHEDULED_ACTION,
    ScheduleKind,
    ScheduleTriggerInput,
    ScheduleTriggerResult,
)
from workflows.machine import MachineWorkflow

T = TypeVar("T")

HEARTBEAT_EVERY = timedelta(seconds=10)
# Rejections that mean "nothing to do now", not "something broke".
SKIP_TYPES = frozenset({ErrorType.INVALID_TRANSITION, ErrorType.SUPERSEDED})
# The trigger failed for good: the action was accepted by the machine and did not succeed.
SCHEDULED_ACTION_FAILED = "ScheduledActionFailed"


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
    def __init__(self, client: Client) -> None:
        self._client = client

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

        handle = self._client.get_workflow_handle_for(
            MachineWorkflow.run, machine_workflow_id(input.machine_id)
        )
        # One update id per trigger run: a retried activity attaches to the update already
        # sent. (The workflow id alone is not enough: two fires in one second share it.)
        info = activity.info()
        update_id = f"{info.workflow_id}/{info.workflow_run_id}"
        try:
            if input.kind is ScheduleKind.WAKE:
                woken = await _heartbeating(
                    handle.execute_update(
                        MachineWorkflow.wake, WakeInput(reason=input.reason), id=update_id
                    )
                )
                state = woken.state
            else:
                hibernated = await _heartbeating(
                    handle.execute_update(
                        MachineWorkflow.hibernate, HibernateInput(reason=input.reason), id=update_id
                    )
                )
                state = hibernated.state
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            if isinstance(cause, ApplicationError) and cause.type in SKIP_TYPES:
                return skipped(message)
            raise ApplicationError(
                f"scheduled {input.kind} failed: {message}",
                type=SCHEDULED_ACTION_FAILED,
                non_retryable=True,
            ) from err
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise  # Temporal trouble: the activity is retried
            if "already completed" in err.message:
                return skipped(f"machine {input.machine_id} is destroyed")
            return skipped(f"machine {input.machine_id} not found")
        return ScheduleTriggerResult(
            machine_id=input.machine_id, kind=input.kind, skipped=False, outcome=state.value
        )
