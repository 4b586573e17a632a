"""A service on a machine: the ports it publishes, the environment its processes get and the
on-start command Dumont runs after every boot. The limits and checks here are the API's 422s and
the provider's wire shape alike; the dataclasses are the on-start activity's messages.

Limits follow vast.ai's, so that whatever the API accepts the marketplace takes too: at most 64
published ports, env entries of at most 256 characters each (`NAME=value`), 32,768 in all with
the port entries, and an on-start of 4,096 bytes (vast's own onstart bound).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.contracts.machine import InstanceInfo

MAX_PORTS = 64
PROTOCOLS = ("tcp", "udp")
# Dumont reaches every machine over SSH on 22/tcp; a service may not take it.
SSH_PORT = 22
MAX_ENV_ENTRY_CHARS = 256
# vast.ai's 32,768 less 2,048 for the port entries (64 of at most 21 characters each:
# `-p 65535:65535/udp` and its "1").
MAX_ENV_TOTAL_CHARS = 32_768 - 2048
MAX_ON_START_BYTES = 4096
# Where the on-start's output goes on the machine (appended, one header per boot).
ON_START_LOG = "~/.dumont/on-start.log"

_PORT = re.compile(r"^(\d+)(?:/([A-Za-z]+))?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Set by Dumont, vast.ai or the shell on every machine: a service's value would break them.
RESERVED_ENV_PREFIXES = ("DUMONT_", "VAST_", "CONTAINER_")
RESERVED_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "PWD",
        "PUBLIC_IPADDR",
        "SSH_PUBLIC_KEY",
        "GPU_COUNT",
        "JUPYTER_TOKEN",
        "DATA_DIRECTORY",
    }
)


def parse_port(value: object) -> str:
    """A declared port as "8000/tcp": from 8000, "8000", "8000/tcp" or "53/udp"; ValueError
    says what is wrong (never echoing more than the port itself)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("a port is a number (8000) or a string like '8000/tcp' or '53/udp'")
    text = str(value).strip()
    match = _PORT.match(text)
    if match is None:
        raise ValueError("a port is a number (8000) or a string like '8000/tcp' or '53/udp'")
    digits, protocol = match.group(1), (match.group(2) or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol[:8]!r}: use tcp or udp")
    number = int(digits) if len(digits) <= 5 else 0
    if not 1 <= number <= 65535:
        raise ValueError("a port is a number from 1 to 65535")
    if number == SSH_PORT:
        raise ValueError("port 22 is Dumont's SSH port; publish another one")
    return f"{number}/{protocol}"


def parse_ports(values: Iterable[object]) -> list[str]:
    """Every declared port, normalised, in the order given; ValueError on a bad or repeated
    one, or too many."""
    given = list(values)
    if len(given) > MAX_PORTS:
        raise ValueError(f"at most {MAX_PORTS} ports")
    ports: list[str] = []
    for index, value in enumerate(given):
        try:
            port = parse_port(value)
        except ValueError as exc:
            raise ValueError(f"ports[{index}]: {exc}") from None
        if port in ports:
            raise ValueError(f"port {port} is declared twice")
        ports.append(port)
    return ports


def split_port(port: str) -> tuple[int, str]:
    """ "8000/tcp" -> (8000, "tcp")."""
    number, _, protocol = port.partition("/")
    return int(number), protocol or "tcp"


def env_name_problem(name: str) -> str | None:
    """Why `name` cannot be a service's environment variable; None when it can."""
    if not _ENV_NAME.match(name):
        return "letters, digits and _, not starting with a digit"
    if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
        return "set by Dumont or the provider on every machine"
    return None


def check_env(env: Mapping[str, str]) -> None:
    """ValueError naming the first variable that breaks a rule (names only: values may be
    secrets and are never repeated back)."""
    total = 0
    for name, value in env.items():
        shown = name if len(name) <= 64 else name[:61] + "..."
        problem = env_name_problem(name)
        if problem is not None:
            raise ValueError(f"{shown!r} is not a usable variable name: {problem}")
        if "\x00" in value:
            raise ValueError(f"the value of {shown} contains a NUL character (\\u0000)")
        entry = len(name) + 1 + len(value)
        if entry > MAX_ENV_ENTRY_CHARS:
            raise ValueError(
                f"{shown}=...: at most {MAX_ENV_ENTRY_CHARS} characters per variable "
                "(name, '=' and value)"
            )
        total += entry
    if total > MAX_ENV_TOTAL_CHARS:
        raise ValueError(f"at most {MAX_ENV_TOTAL_CHARS} characters of variables in all")


def check_on_start(command: str) -> None:
    """ValueError when the on-start command is blank or over the size limit."""
    if not command.strip():
        raise ValueError("the on-start command is blank; leave it out instead")
    size = len(command.encode())
    if size > MAX_ON_START_BYTES:
        raise ValueError(f"at most {MAX_ON_START_BYTES} bytes (UTF-8), got {size}")


@dataclass(kw_only=True)
class RunOnStartInput:
    """Start the machine's on-start command, detached, once per boot."""

    machine_id: str
    instance: InstanceInfo
    command: str
    env: dict[str, str] = field(default_factory=dict)
    # Fresh for every boot: a retried activity finds the command it already started there.
    boot_id: str
    # A start that fails at once (a typo, a missing file, a crash on import) is waited for this
    # long, so that it can be told; a service that keeps running is never waited for. It is on
    # every boot's path to running (a resume's included), so it is short.
    settle_seconds: float = 0.3


@dataclass(kw_only=True)
class RunOnStartResult:
    # Running, or already done with exit status 0.
    started: bool
    # The command's exit status when it ended within the settle time.
    exit_status: int | None = None
    # Why it did not start, with the end of its log.
    detail: str | None = None
