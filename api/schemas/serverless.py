"""`/api/v1/serverless`: the seed's enable and disable bodies with Dumont's own optional fields,
and the one status body every serverless route answers with.

Bodies are strict: a number given as a string, or a bool where a number goes, is a 422 naming
the field (a client that sends `"15"` has a bug worth hearing about), as is an unknown field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.schemas.common import ApiInput
from core.contracts.serverless import (
    IDLE_TIMEOUT_MINUTES_DEFAULT,
    IDLE_TIMEOUT_MINUTES_MAX,
    IDLE_TIMEOUT_MINUTES_MIN,
)
from core.contracts.service import parse_port
from core.contracts.states import MachineState

MAX_KEEP_ALIVE_PATHS = 20
MAX_PATH_CHARS = 256  # a keep-alive or readiness path
# A path the gateway compares with a request's: no query, fragment, space or control character.
_PATH = re.compile(r"^/[^?#\s\x00-\x1f\x7f]*$")
PATH_RULE = "a path starting with '/', without a query (?), fragment (#), space or control"

InstanceId = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["m-3f9a1c2b7d4e"], description="The machine"),
]
ServicePath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_CHARS)]


def _check_path(value: str) -> str:
    if not _PATH.match(value):
        raise ValueError(PATH_RULE)
    return value


class ServerlessEnable(ApiInput):
    """The seed's body (`instance_id`, `idle_timeout_minutes`, `keep_alive_paths`) and Dumont's
    optional fields. Enabling again changes the configuration and keeps the endpoint key."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    instance_id: InstanceId
    # The floor is the API's setting (5 unless a test lowers it), checked by the service: the
    # document states the seed's 5-60.
    idle_timeout_minutes: float = Field(
        default=IDLE_TIMEOUT_MINUTES_DEFAULT,
        le=IDLE_TIMEOUT_MINUTES_MAX,
        json_schema_extra={"minimum": IDLE_TIMEOUT_MINUTES_MIN},
        description="Minutes without a request, GPU load or SSH input before the machine is"
        " paused (GPU billing stops)",
    )
    keep_alive_paths: list[ServicePath] = Field(
        default_factory=list,
        max_length=MAX_KEEP_ALIVE_PATHS,
        examples=[["/health", "/ping"]],
        description="Paths a health check may call without the endpoint key: forwarded while"
        " the machine is up but never counted as activity, answered by the gateway itself"
        " (200, paused) while it is paused; they never wake the machine",
    )
    port: int | str | None = Field(
        default=None,
        examples=[8000, "8000/tcp"],
        description="The service's port, one the machine declared (8000 or '8000/tcp');"
        " default: its only declared TCP port",
    )
    readiness_path: ServicePath | None = Field(
        default=None,
        examples=["/health"],
        description="Answered below 500 once the service is ready after a resume; default:"
        " any HTTP answer on '/'",
    )
    max_pending_requests: int = Field(
        default=100, ge=1, le=10_000, description="Requests held while the machine resumes"
    )
    resume_timeout_seconds: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="How long held requests wait for the machine and its service; then 503",
    )
    public: bool = Field(default=False, description="Take requests without the endpoint key")
    via_ssh: bool = Field(
        default=False,
        description="Forward over Dumont's SSH connection instead of the provider's public"
        " port mapping (for services that must not be exposed)",
    )

    @field_validator("keep_alive_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for index, path in enumerate(value):
            if not _PATH.match(path):
                raise ValueError(f"keep_alive_paths[{index}]: {PATH_RULE}")
        return list(dict.fromkeys(value))  # the same path twice is once

    @field_validator("readiness_path")
    @classmethod
    def _readiness(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value)

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: object) -> object:
        if value is None:
            return None
        port = parse_port(value)  # bools, floats and '53/udp' refused with why
        if not port.endswith("/tcp"):
            raise ValueError("the gateway speaks HTTP: give a TCP port")
        return port


class ServerlessDisable(ApiInput):
    model_config = ConfigDict(extra="forbid", strict=True)

    instance_id: InstanceId


class ServerlessConfigOut(BaseModel):
    idle_timeout_minutes: float
    keep_alive_paths: list[str]
    port: str = Field(examples=["8000/tcp"])
    readiness_path: str | None
    max_pending_requests: int
    resume_timeout_seconds: int
    public: bool
    via_ssh: bool


class LatencyOut(BaseModel):
    """Cold starts that answered (outcome ok): from the first held request to the service's
    first answer, in milliseconds."""

    mean: float | None
    p95: float | None
    count: int


class ServerlessStatusOut(BaseModel):
    """A machine's serverless mode and what it did since it was last enabled. `config`,
    `gateway_url` and `key_prefix` are null for a machine never enabled."""

    machine_id: str
    enabled: bool
    state: MachineState = Field(description="The machine's state")
    gateway_url: str | None = Field(
        examples=["https://dumont.example.com/serverless/m-3f9a1c2b7d4e/"],
        description="Where clients send their requests (any path below it)",
    )
    config: ServerlessConfigOut | None
    key_prefix: str | None = Field(description="The start of the endpoint key, to tell keys apart")
    enabled_at: datetime | None
    last_request_at: datetime | None
    paused_seconds: float = Field(
        description="Time paused (or hibernated after a long pause) since enabled, the current"
        " pause included"
    )
    savings_usd: float = Field(
        description="What those pauses saved: GPU hours not billed, less the stopped disk and"
        " the snapshots' storage"
    )
    resume_latency_ms: LatencyOut
    cycles: int = Field(description="Pause/resume cycles since enabled (resumes and wakes)")
    cold_starts_failed: int = Field(
        description="Cold starts whose held requests got 503 (failed, timed out, gateway shut down)"
    )


class ServerlessEnabled(ServerlessStatusOut):
    endpoint_key: str | None = Field(
        description="The endpoint key (`dsk_...`), shown this once: on the first enable only;"
        " null when enabling again (the key is kept)",
    )


class EndpointKeyOut(BaseModel):
    machine_id: str
    endpoint_key: str = Field(description="The new key, shown this once; the old one is revoked")
    key_prefix: str
    gateway_url: str
