"""The worker's lifecycle settings, handed to each machine workflow once."""

from __future__ import annotations

from temporalio import activity

from core.contracts.activities import ActivityName, LifecyclePolicyInput
from core.contracts.machine import LifecyclePolicy


class PolicyActivities:
    def __init__(self, policy: LifecyclePolicy) -> None:
        self._policy = policy

    @activity.defn(name=ActivityName.LIFECYCLE_POLICY)
    async def lifecycle_policy(self, input: LifecyclePolicyInput) -> LifecyclePolicy:
        return self._policy
