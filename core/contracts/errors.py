"""Every `ApplicationError.type` that workflows, activities and the API agree on, in one
registry: the API maps them to status codes (api/errors.py), retry policies name them."""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    INVALID_TRANSITION = "InvalidTransition"  # update rejected by its validator (HTTP 409)
    UNSUPPORTED = "Unsupported"  # the machine's provider cannot do this (HTTP 409, with why)
    ACTION_FAILED = "ActionFailed"  # an accepted update could not finish; the state says why
    SUPERSEDED = "Superseded"  # an accepted update was overtaken by destroy
    # A wake (a schedule's, or the user's) of a machine served by its standby: it goes back to
    # a GPU by `migrate to gpu` (HTTP 409, with how).
    ON_STANDBY = "OnStandby"
    NO_MATCHING_OFFER = "NoMatchingOffer"
    OFFERS_TAKEN = "OffersTaken"  # every matching offer was rented by others: search again
    INSTANCE_FAILED = "InstanceFailed"  # the instance will never boot: destroy it, go elsewhere
    INSTANCE_GONE = "InstanceGone"  # the provider no longer has the instance
    HOST_UNAVAILABLE = "HostUnavailable"  # a stopped instance's host cannot start it again
    RATE_LIMITED = "RateLimited"
    INVALID_INPUT = "InvalidInput"  # an update's input is out of range (HTTP 422)
    SNAPSHOT_FAILED = "SnapshotFailed"
    RESTORE_FAILED = "RestoreFailed"
    MACHINE_UNREACHABLE = "MachineUnreachable"  # SSH to the machine failed
    AGENT_DEPLOY_FAILED = "AgentDeployFailed"  # the agent's install script failed
    SCHEDULED_ACTION_FAILED = "ScheduledActionFailed"  # a schedule's update failed for good
    TIMEOUT = "Timeout"  # an activity ran out of time (set by the workflow, not raised)
