"""How the CLI shows things: rich tables for people, `--json` for scripts, red errors."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from dumont.client import ApiError, ApiUnreachable
from dumont.config import ConfigError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")

STATUS_STYLES = {
    "running": "green",
    "idle": "yellow",
    "error": "bold red",
    "stopped": "dim",
    "paused": "dim",
    "hibernated": "dim",
    "deleted": "dim",
    "destroyed": "dim",
}


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` in red on stderr; raise the returned Exit."""
    err_console.print(f"[red]error:[/] {message}", markup=True, soft_wrap=True, emoji=False)
    return typer.Exit(code)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """API and configuration errors end the command with a message, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ApiError as exc:
            raise fail(exc.message if exc.status_code != 401 else _unauthorized(exc)) from None
        except (ApiUnreachable, ConfigError) as exc:
            raise fail(str(exc)) from None

    return wrapper


def _unauthorized(exc: ApiError) -> str:
    return f"{exc.message}: check DUMONT_TOKEN (or `dumont token create`)"


def print_json(data: Any) -> None:
    # Plain print: rich would wrap long lines and break the JSON.
    print(json.dumps(data, indent=2, default=str))


def status_text(status: str | None) -> str:
    if not status:
        return "-"
    style = STATUS_STYLES.get(status, "cyan")
    return f"[{style}]{status}[/]"


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:.3f}"


def gpu_text(gpu_name: str, num_gpus: int | None) -> str:
    return f"{num_gpus}x {gpu_name}" if num_gpus and num_gpus > 1 else gpu_name


def when(value: str | None) -> str:
    """An API timestamp in local time, to the second."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def table(*columns: str, keep_whole: tuple[str, ...] = ()) -> Table:
    """A table whose `keep_whole` columns (ids, commands to copy) are never wrapped; the others
    wrap at word boundaries when the terminal is narrow."""
    result = Table(header_style="bold", show_edge=False, pad_edge=False)
    for column in columns:
        result.add_column(column, no_wrap=column in keep_whole)
    return result
