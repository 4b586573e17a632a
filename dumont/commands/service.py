"""A machine's service on the command line: the `--port`, `--env` and `--on-start` options of
`dumont machines create`, and how its ports' addresses are shown."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from dumont.output import fail

PortOption = Annotated[
    list[str] | None,
    typer.Option(
        "--port",
        help="Container port to publish: 8000, 8000/tcp or 53/udp (repeatable).",
        show_default=False,
    ),
]
EnvOption = Annotated[
    list[str] | None,
    typer.Option(
        "--env",
        help="Environment variable NAME=value for the machine's processes (repeatable); "
        "NAME alone takes its value from your environment, out of your shell history.",
        show_default=False,
    ),
]
OnStartOption = Annotated[
    str | None,
    typer.Option(
        "--on-start",
        help="Shell command run after every boot (create, start, restart, wake), from "
        "/workspace, detached; output in ~/.dumont/on-start.log on the machine.",
    ),
]


def parse_env(entries: list[str]) -> dict[str, str]:
    """`NAME=value` (or `NAME`, from the local environment) entries as a dict."""
    env: dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not name:
            raise fail("--env: give NAME=value")
        if not sep:
            if name not in os.environ:
                raise fail(f"--env {name}: give NAME=value, or set {name} in your environment")
            value = os.environ[name]
        env[name] = value
    return env


def service_fields(ports: list[str] | None, env: list[str] | None, on_start: str | None) -> Any:
    """The create body's service fields that were given."""
    fields: dict[str, Any] = {}
    if ports:
        fields["ports"] = list(ports)
    if env:
        fields["env"] = parse_env(env)
    if on_start is not None:
        fields["on_start"] = on_start
    return fields


def ports_text(machine: dict[str, Any], *, arrow: str = " → ") -> str:
    """ "8000/tcp → 203.0.113.7:41234, 53/udp → -": each declared port and its address."""
    ports: dict[str, str | None] = machine.get("ports") or {}
    return ", ".join(f"{port}{arrow}{address or '-'}" for port, address in ports.items()) or "-"
