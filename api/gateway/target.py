"""Which machine a request is for, and the path its service sees: `/serverless/{machine_id}`
and whatever follows (`/` when nothing does), with the query. The raw (still percent-encoded)
path is forwarded where the server gives it, so `%2F` stays `%2F`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.types import Scope

PREFIX = "/serverless"
_RAW_PREFIX = PREFIX.encode() + b"/"


@dataclass(frozen=True, slots=True)
class Target:
    machine_id: str
    path: str  # decoded, for keep-alive matching
    path_qs: str  # as sent upstream: raw path and query


def route_path(scope: Scope) -> str:
    """The request's path below the server's root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :]
    return path


def is_gateway_path(path: str) -> bool:
    return path.startswith(PREFIX) and (len(path) == len(PREFIX) or path[len(PREFIX)] == "/")


def parse_target(scope: Scope) -> Target | None:
    path = route_path(scope)
    rest = path[len(PREFIX) + 1 :] if is_gateway_path(path) else ""
    machine_id, slash, sub = rest.partition("/")
    if not machine_id:
        return None
    sub_path = "/" + sub if slash else "/"
    raw_sub = _raw_sub_path(scope.get("raw_path"), machine_id)
    upstream = raw_sub if raw_sub is not None else quote(sub_path, safe="/:@!$&'()*+,;=-._~")
    query: bytes = scope.get("query_string", b"")
    if query:
        upstream += "?" + query.decode("latin-1")
    return Target(machine_id, sub_path, upstream)


def _raw_sub_path(raw_path: bytes | None, machine_id: str) -> str | None:
    if not raw_path:
        return None
    marker = _RAW_PREFIX + machine_id.encode()
    at = raw_path.find(marker)
    if at < 0:
        return None
    rest = raw_path[at + len(marker) :]
    if rest and not rest.startswith(b"/"):
        return None
    return rest.decode("latin-1") or "/"
