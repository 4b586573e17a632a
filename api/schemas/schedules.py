"""`/api/instances/{id}/schedule`: a machine's daily wake and sleep times (the seed's shapes)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.common import ApiInput
from core.contracts.schedules import ScheduleMode
from core.schedules import check_timezone, normalise_time


class ScheduleIn(ApiInput):
    """A daily wake and/or sleep time, local to `timezone`. A time left out removes that half
    of an existing schedule."""

    model_config = ConfigDict(extra="forbid")

    wake_time: str | None = Field(default=None, examples=["09:00"], description="HH:MM")
    sleep_time: str | None = Field(default=None, examples=["18:00"], description="HH:MM")
    timezone: str = Field(
        default="UTC", max_length=64, examples=["America/Sao_Paulo"], description="IANA name"
    )
    mode: ScheduleMode = Field(
        default=ScheduleMode.HIBERNATE,
        description="`hibernate`: sleep hibernates and wake wakes; `pause`: sleep pauses and "
        "wake resumes (back in seconds on the same host, the stopped disk bills meanwhile)",
    )

    @field_validator("wake_time", "sleep_time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return None if value is None else normalise_time(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def _something(self) -> ScheduleIn:
        if self.wake_time is None and self.sleep_time is None:
            raise ValueError("give wake_time, sleep_time or both")
        if self.wake_time == self.sleep_time:
            raise ValueError("wake_time and sleep_time must differ")
        return self


class ScheduleOut(BaseModel):
    success: bool = True
    instance_id: str
    wake_time: str | None
    sleep_time: str | None
    timezone: str
    mode: ScheduleMode
    next_wake: datetime | None = Field(description="Next wake, UTC; null without a wake time")
    next_sleep: datetime | None = Field(description="Next sleep, UTC; null without a sleep time")


class ScheduleDeleted(BaseModel):
    success: bool = True
