"""Every activity the machine workflow calls, each with its timeouts and retry policy.

Activities are called by name (`core.contracts.activities.ActivityName`) so that activity
modules, with their network and database libraries, never enter the workflow sandbox.

Every call waits for a cancelled activity to finish (`WAIT_CANCELLATION_COMPLETED`): when a
destroy cancels a boot, no create or status write may land after the destroy has moved on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

from core.contracts.activities import (
    ActivityName,
    AttachKeysInput,
    AttachKeysResult,
    DestroyInstancesInput,
    DestroyInstancesResult,
    InstanceActionInput,
    InstanceActionResult,
    LifecyclePolicyInput,
    OwnerKeys,
    OwnerKeysInput,
    ProvisionInput,
    RecordInstanceInput,
    RecordInstancesDestroyedInput,
    RecordResult,
    RecordStateInput,
    WaitReadyInput,
    WaitReadyResult,
)
from core.contracts.agent import InstallAgentInput, InstallAgentResult
from core.contracts.errors import ErrorType
from core.contracts.hibernation import PreHibernateInput, PreHibernateResult, RecordConfigInput
from core.contracts.machine import InstanceInfo, LifecyclePolicy
from core.contracts.snapshots import RestoreRequest, RestoreResult, SnapshotRequest, SnapshotResult

WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED

# Database writes: a database outage delays the lifecycle, it never drops a record.
_RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# Provider calls that change something: a few tries, then the workflow decides (error state).
_PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=[ErrorType.NO_MATCHING_OFFER, ErrorType.INSTANCE_GONE],
)
# An agent install is worth a few tries; then the machine runs without it and says why.
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


def _heartbeat(policy: LifecyclePolicy) -> timedelta:
    return timedelta(seconds=policy.heartbeat_timeout_seconds)


async def lifecycle_policy(input: LifecyclePolicyInput) -> LifecyclePolicy:
    result: LifecyclePolicy = await workflow.execute_activity(
        ActivityName.LIFECYCLE_POLICY,
        input,
        result_type=LifecyclePolicy,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=_RECORD_RETRY,
        cancellation_type=WAIT,
    )
    return result


async def provision_instance(input: ProvisionInput, policy: LifecyclePolicy) -> InstanceInfo:
    result: InstanceInfo = await workflow.execute_activity(
        ActivityName.PROVISION_INSTANCE,
        input,
        result_type=InstanceInfo,
        start_to_close_timeout=timedelta(minutes=5),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=_PROVIDER_RETRY,
        cancellation_type=WAIT,
    )
    return result


async def attach_ssh_keys(input: AttachKeysInput) -> AttachKeysResult:
    result: AttachKeysResult = await workflow.execute_activity(
        ActivityName.ATTACH_SSH_KEYS,
        input,
        result_type=AttachKeysResult,
        start_to_close_timeout=timedelta(minutes=2),
        retry_policy=_PROVIDER_RETRY,
        cancellation_type=WAIT,
    )
    return result


async def wait_until_ready(
    instance: InstanceInfo, deadline: datetime, policy: LifecyclePolicy
) -> WaitReadyResult:
    """Waits until the instance answers SSH, or the deadline; a retry after a dead worker keeps
    the same deadline, and the whole call can never outlive it by more than a minute."""
    remaining = max(deadline - workflow.now(), timedelta(seconds=1))
    result: WaitReadyResult = await workflow.execute_activity(
        ActivityName.WAIT_UNTIL_READY,
        WaitReadyInput(instance=instance, deadline=deadline),
        result_type=WaitReadyResult,
        schedule_to_close_timeout=remaining + timedelta(minutes=1),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=2),
            maximum_interval=timedelta(seconds=30),
            non_retryable_error_types=[ErrorType.INSTANCE_FAILED, ErrorType.INSTANCE_GONE],
        ),
        cancellation_type=WAIT,
    )
    return result


async def instance_action(
    name: ActivityName, instance: InstanceInfo, policy: LifecyclePolicy
) -> InstanceActionResult:
    """stop_instance / start_instance / reboot_instance."""
    result: InstanceActionResult = await workflow.execute_activity(
        name,
        InstanceActionInput(instance=instance),
        result_type=InstanceActionResult,
        start_to_close_timeout=timedelta(minutes=5),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=_PROVIDER_RETRY,
        cancellation_type=WAIT,
    )
    return result


async def destroy_instances(
    input: DestroyInstancesInput, policy: LifecyclePolicy
) -> DestroyInstancesResult:
    result: DestroyInstancesResult = await workflow.execute_activity(
        ActivityName.DESTROY_INSTANCES,
        input,
        result_type=DestroyInstancesResult,
        start_to_close_timeout=timedelta(minutes=5),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=_DESTROY_RETRY,
        cancellation_type=WAIT,
    )
    return result


async def _record(name: ActivityName, input: Any) -> RecordResult:
    result: RecordResult = await workflow.execute_activity(
        name,
        input,
        result_type=RecordResult,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=_RECORD_RETRY,
        cancellation_type=WAIT,
    )
    return result


async def record_state(input: RecordStateInput) -> RecordResult:
    return await _record(ActivityName.RECORD_STATE, input)


async def record_instance(input: RecordInstanceInput) -> RecordResult:
    return await _record(ActivityName.RECORD_INSTANCE, input)


async def record_instances_destroyed(input: RecordInstancesDestroyedInput) -> RecordResult:
    return await _record(ActivityName.RECORD_INSTANCES_DESTROYED, input)


async def owner_ssh_keys(input: OwnerKeysInput) -> OwnerKeys:
    result: OwnerKeys = await workflow.execute_activity(
        ActivityName.OWNER_SSH_KEYS,
        input,
        result_type=OwnerKeys,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=_RECORD_RETRY,
        cancellation_type=WAIT,
    )
    return result


async def install_agent(input: InstallAgentInput, policy: LifecyclePolicy) -> InstallAgentResult:
    result: InstallAgentResult = await workflow.execute_activity(
        ActivityName.INSTALL_AGENT,
        input,
        result_type=InstallAgentResult,
        start_to_close_timeout=timedelta(minutes=3),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=_INSTALL_RETRY,
        cancellation_type=WAIT,
    )
    return result


async def record_config(input: RecordConfigInput) -> RecordResult:
    return await _record(ActivityName.RECORD_CONFIG, input)


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
    )
    return result


def _snapshot_retry(policy: LifecyclePolicy) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.snapshot_retry_seconds),
        backoff_coefficient=2.0,
        maximum_attempts=policy.snapshot_attempts,
        non_retryable_error_types=[ErrorType.INSTANCE_GONE],
    )


async def snapshot_workspace(request: SnapshotRequest, policy: LifecyclePolicy) -> SnapshotResult:
    """Long: it heartbeats progress, and a retry with the same snapshot id resumes (packs an
    earlier attempt stored are not uploaded again)."""
    result: SnapshotResult = await workflow.execute_activity(
        ActivityName.SNAPSHOT_WORKSPACE,
        request,
        result_type=SnapshotResult,
        start_to_close_timeout=timedelta(hours=6),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=_snapshot_retry(policy),
        cancellation_type=WAIT,
    )
    return result


async def restore_workspace(request: RestoreRequest, policy: LifecyclePolicy) -> RestoreResult:
    result: RestoreResult = await workflow.execute_activity(
        ActivityName.RESTORE_WORKSPACE,
        request,
        result_type=RestoreResult,
        start_to_close_timeout=timedelta(hours=6),
        heartbeat_timeout=_heartbeat(policy),
        retry_policy=_snapshot_retry(policy),
        cancellation_type=WAIT,
    )
    return result
