"""The worker's lifecycle settings, handed to each machine workflow once."""

from __future__ import annotations

from temporalio import activity

from core.types import ActivityName, LifecyclePolicy, LifecyclePolicyInput


class PolicyActivities:
    def __init__(self, policy: LifecyclePolicy) -> None:
        self._policy = policy

    @activity.defn(name=ActivityName.LIFECYCLE_POLICY)
    async def lifecycle_policy(self, input: LifecyclePolicyInput) -> LifecyclePolicy:
        return self._policy
