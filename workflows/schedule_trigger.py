"""ScheduleTriggerWorkflow: what a wake/sleep Temporal Schedule starts.

A Schedule can only start a workflow, not message one, so this tiny workflow asks one activity
to send the machine workflow its `wake` or `hibernate` update and wait for the outcome. Its
result says what happened (or why it was skipped), which the Web UI shows next to the schedule.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.contracts.schedules import (
        SEND_SCHEDULED_ACTION,
        TRIGGER_WORKFLOW,
        ScheduleTriggerInput,
        ScheduleTriggerResult,
    )

# The update returns when the wake or hibernate is done: a wake may rent, boot and restore.
ACTION_TIMEOUT = timedelta(hours=3)
# The activity heartbeats while it waits, so a lost worker is noticed in a minute, not hours;
# a retry sends the same update id and attaches to the update already under way.
HEARTBEAT_TIMEOUT = timedelta(seconds=60)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)


@workflow.defn(name=TRIGGER_WORKFLOW)
class ScheduleTriggerWorkflow:
    @workflow.run
    async def run(self, input: ScheduleTriggerInput) -> ScheduleTriggerResult:
        return await workflow.execute_activity(
            SEND_SCHEDULED_ACTION,
            input,
            result_type=ScheduleTriggerResult,
            start_to_close_timeout=ACTION_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY,
        )
