"""Every activity the machine workflow calls, in one table of options (timeouts, retries), and
one `call` that runs any of them by name.

Activities are called by name (`ActivityName`) so that activity modules, with their network and
database libraries, never enter the workflow sandbox. Every call waits for a cancelled activity
to finish (`WAIT_CANCELLATION_COMPLETED`): when a destroy cancels a boot, no create or status
write may land after the destroy has moved on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType, ActivityConfig

from core.contracts.activities import ActivityName, WaitReadyInput, WaitReadyResult
from core.contracts.errors import ErrorType
from core.contracts.hibernation import PreHibernateInput, PreHibernateResult
from core.contracts.machine import InstanceInfo, LifecyclePolicy

T = TypeVar("T")
WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED

# Database writes outside the lock (the outbox's flusher): an outage delays them, never drops.
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# A database read under the lock: a few tries, then the workflow goes on without it (a read
# must never hold a destroy back).
_READ_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
# Provider calls that change something: a few tries, then the workflow decides (error state).
_PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=[
        ErrorType.NO_MATCHING_OFFER,
        ErrorType.INSTANCE_GONE,
        ErrorType.UNSUPPORTED,
    ],
)
# An agent install (or the on-start's start) is worth a few tries; then the machine runs
# without it and says why.
_INSTALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=[ErrorType.INSTANCE_GONE],
)
# Destroy stops the billing: it keeps trying for as long as the provider answers "not now".
_DESTROY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=60)
)


# The standby's SSH work (core/contracts/standby.py): a machine that is not there stops the
# retries; anything else (an SSH hiccup, apt-get's mirror, a check that found a difference)
# is worth a few more tries before the workflow decides.
_STANDBY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=5,
    non_retryable_error_types=[ErrorType.INSTANCE_GONE, ErrorType.INVALID_INPUT],
)
# A final sync or a restore is long and costly: fewer tries, spaced out.
_STANDBY_COPY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=3,
    non_retryable_error_types=[ErrorType.INSTANCE_GONE, ErrorType.INVALID_INPUT],
)


def _heartbeat(policy: LifecyclePolicy | None) -> timedelta:
    assert policy is not None
    return timedelta(seconds=policy.heartbeat_timeout_seconds)


def _snapshot(policy: LifecyclePolicy | None) -> ActivityConfig:
    """Long: it heartbeats progress, and a retry with the same snapshot id resumes."""
    assert policy is not None
    return ActivityConfig(
        start_to_close_timeout=timedelta(hours=6),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=policy.snapshot_retry_seconds),
            backoff_coefficient=2.0,
            maximum_attempts=policy.snapshot_attempts,
            non_retryable_error_types=[ErrorType.INSTANCE_GONE],
        ),
    )


def _provider(minutes: int) -> Callable[[Any], ActivityConfig]:
    # Every provider activity heartbeats: a worker that dies in one is noticed within the
    # heartbeat timeout, not at the end of its minutes.
    def options(policy: LifecyclePolicy | None) -> ActivityConfig:
        return ActivityConfig(
            start_to_close_timeout=timedelta(minutes=minutes),
            heartbeat_timeout=_heartbeat(policy),
            retry_policy=_PROVIDER_RETRY,
        )

    return options


def _standby(duration: timedelta, retry: RetryPolicy) -> Callable[[Any], ActivityConfig]:
    # They all heartbeat while their SSH commands run (an apt-get install, an rsync).
    def options(policy: LifecyclePolicy | None) -> ActivityConfig:
        return ActivityConfig(
            start_to_close_timeout=duration,
            heartbeat_timeout=_heartbeat(policy),
            retry_policy=retry,
        )

    return options


def _record(_policy: LifecyclePolicy | None) -> ActivityConfig:
    return ActivityConfig(start_to_close_timeout=timedelta(seconds=30), retry_policy=RECORD_RETRY)


# Each activity's options from the machine's lifecycle policy (None before it is read).
OPTIONS: dict[ActivityName, Callable[[LifecyclePolicy | None], ActivityConfig]] = {
    ActivityName.LIFECYCLE_POLICY: lambda _: ActivityConfig(
        # Read from the worker's settings, not the database: it answers whenever a worker runs.
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RECORD_RETRY,
    ),
    ActivityName.PROVISION_INSTANCE: _provider(5),
    ActivityName.ATTACH_SSH_KEYS: _provider(2),
    ActivityName.STOP_INSTANCE: _provider(5),
    ActivityName.START_INSTANCE: _provider(5),
    ActivityName.REBOOT_INSTANCE: _provider(5),
    ActivityName.DESTROY_INSTANCES: lambda policy: ActivityConfig(
        start_to_close_timeout=timedelta(minutes=5),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=_DESTROY_RETRY,
    ),
    ActivityName.INSTALL_AGENT: lambda policy: ActivityConfig(
        start_to_close_timeout=timedelta(minutes=3),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=_INSTALL_RETRY,
    ),
    ActivityName.RUN_ON_START: lambda _: ActivityConfig(
        start_to_close_timeout=timedelta(minutes=2), retry_policy=_INSTALL_RETRY
    ),
    ActivityName.OWNER_SSH_KEYS: lambda _: ActivityConfig(
        start_to_close_timeout=timedelta(seconds=30), retry_policy=_READ_RETRY
    ),
    ActivityName.RECORD_BATCH: _record,
    # Written inline, under the lock, by runs started before the outbox (see CONTRIBUTING.md).
    ActivityName.RECORD_STATE: _record,
    ActivityName.RECORD_INSTANCE: _record,
    ActivityName.RECORD_INSTANCES_DESTROYED: _record,
    ActivityName.RECORD_CONFIG: _record,
    ActivityName.SNAPSHOT_WORKSPACE: _snapshot,
    ActivityName.RESTORE_WORKSPACE: _snapshot,
    # Link may install rsync on both ends; unlink is one file removed.
    ActivityName.LINK_STANDBY: _standby(timedelta(minutes=15), _STANDBY_RETRY),
    ActivityName.UNLINK_STANDBY: _standby(timedelta(minutes=2), _STANDBY_RETRY),
    # A final sync pushes what changed since the last (usually little, but a first one is all).
    ActivityName.SYNC_NOW: _standby(timedelta(hours=2), _STANDBY_COPY_RETRY),
    # The whole workspace over the network, then hashed on both ends.
    ActivityName.RESTORE_FROM_STANDBY: _standby(timedelta(hours=6), _STANDBY_COPY_RETRY),
    # One provider read; it answers GONE rather than failing.
    ActivityName.CHECK_INSTANCE: _provider(1),
}


async def call(
    name: ActivityName,
    arg: Any,
    result_type: type[T],
    policy: LifecyclePolicy | None,
    summary: str | None = None,
    *,
    local: bool = False,
    attempts: int | None = None,
) -> T:
    """Run activity `name` with its options from the table; `summary` shows in the Web UI.
    `local` runs it in the workflow's own worker, recorded as one marker: for short reads,
    which would otherwise cost a round trip through the server's task queue. `attempts` caps
    its tries where the caller retries on its own schedule (a standby)."""
    config = OPTIONS[name](policy)
    retry = config.get("retry_policy")
    if attempts is not None and retry is not None:
        config["retry_policy"] = dataclasses.replace(retry, maximum_attempts=attempts)
    config["cancellation_type"] = WAIT
    if summary is not None:
        config["summary"] = summary
    if local:
        assert "heartbeat_timeout" not in config, f"{name} heartbeats: not a local activity"
        local_result: T = await workflow.execute_local_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=config.get("start_to_close_timeout"),
            retry_policy=config.get("retry_policy"),
            cancellation_type=WAIT,
            summary=summary,
        )
        return local_result
    result: T = await workflow.execute_activity(name, arg, result_type=result_type, **config)
    return result


async def wait_until_ready(
    instance: InstanceInfo,
    deadline: datetime,
    policy: LifecyclePolicy,
    *,
    fail_when_waiting_for_host: bool = False,
) -> WaitReadyResult:
    """Waits until the instance answers SSH, or the deadline; a retry after a dead worker keeps
    the same deadline, and the whole call can never outlive it by more than a minute."""
    remaining = max(deadline - workflow.now(), timedelta(seconds=1))
    result: WaitReadyResult = await workflow.execute_activity(
        ActivityName.WAIT_UNTIL_READY,
        WaitReadyInput(
            instance=instance,
            deadline=deadline,
            fail_when_waiting_for_host=fail_when_waiting_for_host,
        ),
        result_type=WaitReadyResult,
        schedule_to_close_timeout=remaining + timedelta(minutes=1),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=2),
            maximum_interval=timedelta(seconds=30),
            non_retryable_error_types=[
                ErrorType.INSTANCE_FAILED,
                ErrorType.INSTANCE_GONE,
                ErrorType.HOST_UNAVAILABLE,
            ],
        ),
        cancellation_type=WAIT,
        summary=f"instance {instance.instance_id} answers SSH",
    )
    return result


async def run_pre_hibernate(input: PreHibernateInput) -> PreHibernateResult:
    """The user's hook: its own time limit plus a margin for the SSH session."""
    result: PreHibernateResult = await workflow.execute_activity(
        ActivityName.RUN_PRE_HIBERNATE,
        input,
        result_type=PreHibernateResult,
        start_to_close_timeout=timedelta(seconds=input.timeout_seconds + 90),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=5),
            maximum_attempts=2,
            non_retryable_error_types=[ErrorType.INSTANCE_GONE],
        ),
        cancellation_type=WAIT,
        summary="pre-hibernate command",
    )
    return result


def called_by_name() -> frozenset[ActivityName]:
    """Every activity the machine workflow may call (the contract test checks the worker
    registers each one and the test fakes stand in for each one)."""
    return frozenset(OPTIONS) | {ActivityName.WAIT_UNTIL_READY, ActivityName.RUN_PRE_HIBERNATE}
