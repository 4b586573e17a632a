"""The agent's config.json: written by the control plane at install, read by the agent."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_INTERVAL_SECONDS = 30.0
DEFAULT_WORKSPACE = "/workspace"
DEFAULT_MAX_BUFFERED_REPORTS = 2880  # 24 h at the default 30 s


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AgentConfig:
    machine_id: str
    api_url: str  # the API's base URL, e.g. https://dumont.example.com
    token: str  # the machine's agent token; never logged
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    workspace: str = DEFAULT_WORKSPACE
    # Reports kept while the API is unreachable; the oldest go first when it is full.
    max_buffered_reports: int = DEFAULT_MAX_BUFFERED_REPORTS

    def __post_init__(self) -> None:
        for name in ("machine_id", "api_url", "token"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"config: {name} must be a non-empty string")
        if not self.api_url.startswith(("http://", "https://")):
            raise ConfigError("config: api_url must start with http:// or https://")
        interval = self.interval_seconds
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ConfigError("config: interval_seconds must be a positive number")
        buffered = self.max_buffered_reports
        if isinstance(buffered, bool) or not isinstance(buffered, int) or buffered < 1:
            raise ConfigError("config: max_buffered_reports must be a positive integer")

    def __repr__(self) -> str:  # keeps the token out of logs and tracebacks
        return f"AgentConfig(machine_id={self.machine_id!r}, api_url={self.api_url!r}, ...)"

    @property
    def status_url(self) -> str:
        return self.api_url.rstrip("/") + "/api/agent/status"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> AgentConfig:
        if not isinstance(data, dict):
            raise ConfigError("config: expected a JSON object")
        known = set(cls.__dataclass_fields__)
        missing = sorted({"machine_id", "api_url", "token"} - set(data))
        if missing:
            raise ConfigError(f"config: missing {', '.join(missing)}")
        return cls(**{key: value for key, value in data.items() if key in known})

    @classmethod
    def load(cls, path: str) -> AgentConfig:
        with open(path, encoding="utf-8") as handle:
            try:
                data = json.load(handle)
            except ValueError as exc:
                raise ConfigError(f"config: {path} is not JSON: {exc}") from None
        return cls.from_dict(data)
