"""sync.json: where the agent pushes the workspace, written by the control plane's
`link_standby` activity next to config.json and removed by `unlink_standby`. Absent: no sync.

Every value ends up in an rsync/ssh command line (as separate arguments, never through a
shell), so each is checked here: a host or user that starts with "-" would be an option.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

SYNC_FILE = "sync.json"
STATUS_FILE = "sync-status.json"
LOCK_FILE = "sync.lock"
DEFAULT_INTERVAL_SECONDS = 30.0
MAX_EXCLUDES = 64
MAX_EXCLUDE_LENGTH = 256

_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]%-]{1,253}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
# Paths go into rsync's `-e` string, which rsync splits on spaces.
_PLAIN_PATH = re.compile(r"^/[^\s'\"\\]*$")


class SyncConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SyncTarget:
    host: str
    port: int
    user: str
    path: str = "/workspace"  # the standby's workspace; its forced `rrsync` fixes the root

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def destination(self) -> str:
        # Relative: the standby's `rrsync /workspace` roots it in the workspace (an absolute
        # path would be taken as a path INSIDE the workspace).
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{self.user}@{host}:"


@dataclass(frozen=True)
class SyncConfig:
    machine_id: str
    workspace: str
    target: SyncTarget
    key_file: str
    known_hosts_file: str
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    excludes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any) -> SyncConfig:
        if not isinstance(data, dict):
            raise SyncConfigError("sync config: expected a JSON object")
        target = data.get("target")
        if not isinstance(target, dict):
            raise SyncConfigError("sync config: target must be an object")
        config = cls(
            machine_id=_text(data, "machine_id"),
            workspace=_path(data, "workspace"),
            target=SyncTarget(
                host=_matching(target, "host", _HOST),
                port=_port(target.get("port", 22)),
                user=_matching(target, "user", _USER),
                path=str(target.get("path") or "/workspace"),
            ),
            key_file=_path(data, "key_file"),
            known_hosts_file=_path(data, "known_hosts_file"),
            interval_seconds=_interval(data.get("interval_seconds", DEFAULT_INTERVAL_SECONDS)),
            excludes=_excludes(data.get("excludes") or []),
        )
        if config.target.host.startswith("-"):
            raise SyncConfigError("sync config: target.host must not start with '-'")
        return config

    @classmethod
    def load(cls, path: str) -> SyncConfig:
        """Raises FileNotFoundError when there is no sync, SyncConfigError when it is bad."""
        with open(path, encoding="utf-8") as handle:
            try:
                data = json.load(handle)
            except ValueError as exc:
                raise SyncConfigError(f"sync config: {path} is not JSON: {exc}") from None
        return cls.from_dict(data)


def _text(data: dict, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise SyncConfigError(f"sync config: {name} must be a non-empty string")
    return value


def _matching(data: dict, name: str, pattern: re.Pattern) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise SyncConfigError(f"sync config: target.{name} is not a valid {name}")
    return value


def _path(data: dict, name: str) -> str:
    value = _text(data, name)
    if not _PLAIN_PATH.match(value):
        raise SyncConfigError(f"sync config: {name} must be an absolute path without spaces")
    return value.rstrip("/") or "/"


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise SyncConfigError("sync config: target.port must be a port number")
    return value


def _interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SyncConfigError("sync config: interval_seconds must be a positive number")
    return float(value)


def _excludes(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_EXCLUDES:
        raise SyncConfigError(f"sync config: excludes must be a list of at most {MAX_EXCLUDES}")
    for pattern in value:
        if (
            not isinstance(pattern, str)
            or not 0 < len(pattern) <= MAX_EXCLUDE_LENGTH
            or any(ch in pattern for ch in "\n\r\0")
        ):
            raise SyncConfigError(f"sync config: {pattern!r} is not an exclude pattern")
    return list(value)


def agent_dir_of(config_path: str) -> str:
    return os.path.dirname(os.path.abspath(config_path))
