"""Checking, before anything starts, that every port the embedded stack needs is free."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PortClaim:
    """A port one service of the stack will listen on, and how a user moves it."""

    port: int
    service: str  # shown to the user, e.g. "API"
    setting: str  # environment variable, e.g. "DUMONT_API_PORT"
    option: str  # command line option, e.g. "--api-port"
    host: str = "127.0.0.1"

    @property
    def how_to_change(self) -> str:
        return f"set {self.setting} or {self.option}"


def port_is_free(host: str, port: int) -> bool:
    # SO_REUSEADDR, like the servers themselves: a port left in TIME_WAIT by the previous run
    # is free to them, one with a listener is not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_problem(claims: Iterable[PortClaim]) -> str | None:
    """A one-line description of the first port that cannot be used, or None."""
    seen: dict[int, PortClaim] = {}
    for claim in claims:
        if not 0 < claim.port < 65536:
            return f"port {claim.port} is not a valid port ({claim.service}); {claim.how_to_change}"
        other = seen.get(claim.port)
        if other is not None:
            return (
                f"port {claim.port} is set for both {other.service} and {claim.service}; "
                f"{claim.how_to_change}"
            )
        seen[claim.port] = claim
        if not port_is_free(claim.host, claim.port):
            return f"port {claim.port} is in use ({claim.service}); {claim.how_to_change}"
    return None
