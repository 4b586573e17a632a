"""Bodies of `/api/v1/snapshots/retention`: an owner's snapshot retention and changes to it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import ApiInput
from core.snapshots.owner_retention import (
    DELETED_RETENTION_DAYS_RANGE,
    KEEP_LAST_RANGE,
    OwnerRetention,
    RetentionChange,
)


class RetentionValuesOut(BaseModel):
    keep_last: int = Field(description="Committed snapshots kept per machine")
    deleted_retention_days: int = Field(
        description="Days a deleted machine's snapshots are kept; 0 keeps them until you delete"
    )


class RetentionOut(RetentionValuesOut):
    """What applies to your snapshots now; `defaults` is what applies where you set nothing."""

    defaults: RetentionValuesOut
    customized: bool = Field(description="Whether you override at least one default")

    @classmethod
    def of(cls, retention: OwnerRetention) -> RetentionOut:
        return cls(
            keep_last=retention.keep_last,
            deleted_retention_days=retention.deleted_retention_days,
            defaults=RetentionValuesOut(
                keep_last=retention.defaults.keep_last,
                deleted_retention_days=retention.defaults.deleted_retention_days,
            ),
            customized=retention.customized,
        )


class RetentionIn(ApiInput):
    """`PUT`: the fields given change; `null` puts that field back to the default; fields left
    out keep their value."""

    # Strict: "5" or 5.0 for a count is a mistake worth reporting, not coercing.
    model_config = ConfigDict(extra="forbid", strict=True)

    keep_last: int | None = Field(default=None, ge=KEEP_LAST_RANGE[0], le=KEEP_LAST_RANGE[1])
    deleted_retention_days: int | None = Field(
        default=None, ge=DELETED_RETENTION_DAYS_RANGE[0], le=DELETED_RETENTION_DAYS_RANGE[1]
    )

    @model_validator(mode="after")
    def _changes_something(self) -> RetentionIn:
        if not self.model_fields_set:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"nothing to change: give at least one of {names}")
        return self

    def change(self) -> RetentionChange:
        return RetentionChange(
            keep_last=self.keep_last,
            deleted_retention_days=self.deleted_retention_days,
            given=frozenset(self.model_fields_set),
        )
