"""`/api/v1/alerts`: rules and their changes, alerts that fired, webhook deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationInfo, field_validator

from api.schemas.common import ApiInput
from core.alerts.rules import METRIC_KINDS, RuleKind

# An agent reports every 30 s by default: a shorter silence is no outage.
MIN_OFFLINE_SECONDS = 30
MAX_DURATION_SECONDS = 7 * 24 * 3600


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: RuleKind
    threshold: float | None = Field(description="Percent; fires strictly above it")
    duration_seconds: int = Field(description="How long the condition must hold")
    enabled: bool


class RulesOut(BaseModel):
    rules: list[RuleOut]
    webhook_url: str | None
    webhook_secret_created_at: datetime | None


# The default of a field a change may leave out but never set to null (typed Any: not a value
# of the field's type, and never read, as only fields given are applied).
_LEFT_OUT: Any = None


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # "left out: kept", not a null the type refuses


class RuleIn(ApiInput):
    """A change to one rule; fields left out keep their value."""

    # Strict: `false` is no duration. Finite: nan and inf are no threshold.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    kind: RuleKind = Field(strict=False)  # the JSON string of one
    threshold: float | None = Field(default=None, ge=0, lt=100)
    # Left out: kept (read only when given, `model_fields_set`). Never null: a rule always
    # has both, so the type (and the schema) has no null and an explicit one is refused.
    duration_seconds: int = Field(
        default=_LEFT_OUT, ge=0, le=MAX_DURATION_SECONDS, json_schema_extra=_no_default
    )
    enabled: bool = Field(default=_LEFT_OUT, json_schema_extra=_no_default)

    @field_validator("threshold")
    @classmethod
    def _threshold_fits_kind(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if kind is RuleKind.MACHINE_OFFLINE and value is not None:
            raise ValueError("machine_offline takes no threshold; set duration_seconds")
        if kind in METRIC_KINDS and value is None:
            raise ValueError(f"{kind} needs a threshold between 0 and 100")
        return value

    @field_validator("duration_seconds")
    @classmethod
    def _offline_not_too_short(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("kind") is RuleKind.MACHINE_OFFLINE:
            if value < MIN_OFFLINE_SECONDS:
                raise ValueError(f"machine_offline needs at least {MIN_OFFLINE_SECONDS} s")
        return value


class RulesIn(ApiInput):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(default_factory=list, max_length=len(RuleKind))
    webhook_url: HttpUrl | None = Field(
        default=None, description="http(s) URL alert events are posted to; null removes it"
    )

    @field_validator("rules")
    @classmethod
    def _one_change_per_kind(cls, value: list[RuleIn]) -> list[RuleIn]:
        kinds = [rule.kind for rule in value]
        if len(set(kinds)) != len(kinds):
            raise ValueError("each kind at most once")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _short_enough(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and len(str(value)) > 2048:
            raise ValueError("URL longer than 2048 characters")
        return value


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    machine_id: str
    kind: RuleKind
    state: Literal["firing", "resolved"]
    threshold: float | None
    value: float | None
    reason: str
    resolved_reason: str | None
    fired_at: datetime
    resolved_at: datetime | None


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    alert_id: int
    event: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptOut]


class SecretOut(BaseModel):
    webhook_secret: str = Field(
        description="Shown only now. Verify `X-Dumont-Signature: sha256=<HMAC-SHA256(body)>`."
    )
    created_at: datetime
