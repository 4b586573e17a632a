"""The serverless tables. `serverless_endpoints` holds what the gateway needs per machine (the
workflow carries only the mode and its idle timeout); `serverless_cold_starts` one line per
resume a gateway held requests through, for the status's latency figures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlalchemy import false as sa_false
from sqlmodel import Field, SQLModel

from core.db_types import UtcDateTime, timestamp_field


class ServerlessEndpoint(SQLModel, table=True):
    __tablename__ = "serverless_endpoints"

    machine_id: str = Field(primary_key=True, foreign_key="machines.id", max_length=64)
    owner_id: str = Field(index=True, max_length=64)
    enabled: bool = Field(default=True)
    # The declared container port the service listens on ("8000/tcp").
    port: str = Field(max_length=16)
    # Answered (any status below 500) once the service is up; None: any HTTP answer on `/`.
    readiness_path: str | None = Field(default=None, max_length=1024)
    keep_alive_paths: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # Any number in the API's bounds (7.5 is half past seven minutes).
    idle_timeout_minutes: float = Field(default=15)
    max_pending_requests: int = Field(default=100)
    resume_timeout_seconds: int = Field(default=300)
    public: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    via_ssh: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # SHA-256 of the endpoint key (shown once, at enable and at each rotation) and its start.
    key_hash: str = Field(max_length=64)
    key_prefix: str = Field(max_length=16)
    # When serverless mode was last turned on: savings and cycles count from here.
    enabled_at: datetime = timestamp_field(nullable=False)
    updated_at: datetime = timestamp_field(nullable=False)
    last_request_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class ServerlessColdStart(SQLModel, table=True):
    __tablename__ = "serverless_cold_starts"

    id: int | None = Field(default=None, primary_key=True)
    machine_id: str = Field(foreign_key="machines.id", index=True, max_length=64)
    at: datetime = timestamp_field(nullable=False)
    # "ok": the held requests were forwarded; "failed": the resume failed; "timed_out": past
    # resume_timeout_seconds; "shutdown": the gateway stopped while holding them.
    outcome: str = Field(max_length=16)
    held: int = Field(default=0)
    # From the first held request until the machine was up, then until the service answered.
    resume_ms: float | None = Field(default=None)
    ready_ms: float | None = Field(default=None)
    total_ms: float | None = Field(default=None)
    reason: str | None = Field(default=None, max_length=2000)
