"""`dumont dev`: the whole product on one machine, state kept in one data dir.

A child that dies is reported with the tail of its log and everything is stopped (exit 1): a
silent restart would hide the bug that killed it, and rerunning `dumont dev` resumes where the
stack left off.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from core.settings import Settings
from dumont.devenv import TOKEN_FILE, load_or_create_secrets, write_dev_env, write_private
from dumont.output import console, err_console
from dumont.ports import port_problem
from dumont.stack import Stack, find_binary, port_claims
from dumont.supervisor import ChildFailed, Supervisor

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

READY_LINE = "Dumont is ready"
DEV_USER = "dev"
INFRA_TIMEOUT_S = 60.0
SERVICES_TIMEOUT_S = 60.0


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived."""


def _request_stop(signum: int, _frame: FrameType | None) -> None:
    # Further signals while stopping are ignored: stop_all is bounded by its grace period.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise StopRequested(signal.Signals(signum).name)


def _settings(data_dir: Path | None, ports: dict[str, int | None]) -> Settings:
    overrides: dict[str, Any] = {k: v for k, v in ports.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = Settings(**overrides)
    settings.data_dir = settings.data_dir.expanduser().resolve()
    return settings


def ensure_dev_token(engine: Engine, data_dir: Path) -> str:
    """The dev user's token: the stored plaintext while it still resolves, else a new one."""
    from core.accounts import get_or_create_user, issue_token, user_for_token
    from core.db import session_scope

    path = data_dir / TOKEN_FILE
    with session_scope(engine) as session:
        if path.exists():
            token = path.read_text().strip()
            if token and user_for_token(session, token) is not None:
                return token
        user = get_or_create_user(session, DEV_USER)
        token = issue_token(session, user.id, name="dumont-dev")
    write_private(path, token + "\n")
    return token


def bootstrap(settings: Settings) -> Stack:
    """Everything that must exist before a child starts; idempotent, so restarts reuse it."""
    # Imported here, not at the top: every other command imports this module and must start
    # fast without the database and SSH libraries.
    from core.db import make_engine, migrate
    from core.ssh import ensure_identity

    data_dir = settings.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds keys and tokens
    (data_dir / "logs").mkdir(exist_ok=True)
    (data_dir / "s3" / settings.s3_bucket).mkdir(parents=True, exist_ok=True)
    secrets = load_or_create_secrets(data_dir)
    ensure_identity(settings.ssh_key_path)
    engine = make_engine(settings.resolved_database_url)
    try:
        migrate(engine)
        token = ensure_dev_token(engine, data_dir)
    finally:
        engine.dispose()
    return Stack(settings=settings, secrets=secrets, token=token)


def _without_password(database_url: str) -> str:
    from sqlalchemy import make_url

    return make_url(database_url).render_as_string(hide_password=True)


def print_summary(stack: Stack, env_path: Path) -> None:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("API", stack.api_url)
    table.add_row("API docs", f"{stack.api_url}/docs")
    table.add_row("Temporal", stack.temporal_address)
    table.add_row("Temporal Web UI", stack.temporal_ui_url)
    table.add_row("S3 endpoint", f"{stack.s3_endpoint}  (bucket {stack.settings.s3_bucket})")
    table.add_row("Sim marketplace", f"{stack.sim_url}  (VAST_URL)")
    table.add_row("Sim Compute Engine", f"{stack.sim_gce_url}  (DUMONT_GCP_ENDPOINT)")
    table.add_row("Database", _without_password(stack.database_url))
    table.add_row("Logs", str(stack.data_dir / "logs"))
    table.add_row("Token", stack.token)
    table.add_row("Environment", f"source {env_path}")
    table.add_row("Try", 'dumont machines create --gpu "RTX 4090" --image ubuntu:22.04')
    console.rule("[bold]Dumont Cloud[/] (dev)")
    console.print(table)
    console.print(f"[bold green]{READY_LINE}.[/] Press Ctrl-C to stop.")
    sys.stdout.flush()


def _report_failure(exc: ChildFailed) -> None:
    err_console.print(
        f"[bold red]{exc}[/]; stopping everything. Last lines of {exc.child.log_path}:"
    )
    err_console.print(exc.child.log_tail(), markup=False, highlight=False)


def run_stack(stack: Stack) -> int:
    supervisor = Supervisor(log_dir=stack.data_dir / "logs")
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with console.status("Starting Temporal, S3 and the sim…"):
            infra = [supervisor.start(spec) for spec in stack.infrastructure()]
            supervisor.wait_ready(infra, INFRA_TIMEOUT_S)
        with console.status("Starting the worker and the API…"):
            services = [supervisor.start(spec) for spec in stack.services()]
            supervisor.wait_ready(services, SERVICES_TIMEOUT_S)
        env_path = write_dev_env(stack.data_dir, stack.public_env())
        print_summary(stack, env_path)
        supervisor.watch()
    except ChildFailed as exc:
        _report_failure(exc)
        return 1
    except StopRequested as exc:
        console.print(f"{exc}: stopping…")
        return 0
    finally:
        supervisor.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0  # unreachable: watch() only returns by raising


def dev(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where all state lives [env: DUMONT_DATA_DIR; default ~/.dumont]"),
    ] = None,
    api_port: Annotated[
        int | None, typer.Option(help="API port [env: DUMONT_API_PORT; default 8000]")
    ] = None,
    temporal_port: Annotated[
        int | None, typer.Option(help="Temporal gRPC port [env: DUMONT_TEMPORAL_PORT; 7233]")
    ] = None,
    temporal_ui_port: Annotated[
        int | None, typer.Option(help="Temporal Web UI port [env: DUMONT_TEMPORAL_UI_PORT; 8233]")
    ] = None,
    temporal_http_port: Annotated[
        int | None,
        typer.Option(help="Temporal HTTP API port [env: DUMONT_TEMPORAL_HTTP_PORT; 7243]"),
    ] = None,
    temporal_metrics_port: Annotated[
        int | None,
        typer.Option(help="Temporal metrics port [env: DUMONT_TEMPORAL_METRICS_PORT; 7244]"),
    ] = None,
    s3_port: Annotated[
        int | None, typer.Option(help="S3 endpoint port [env: DUMONT_S3_PORT; default 9000]")
    ] = None,
    sim_port: Annotated[
        int | None, typer.Option(help="Sim marketplace port [env: DUMONT_SIM_PORT; 8500]")
    ] = None,
    sim_gce_port: Annotated[
        int | None,
        typer.Option(help="Sim Compute Engine port [env: DUMONT_SIM_GCE_PORT; 8501]"),
    ] = None,
) -> None:
    """Start the whole product on this machine: Temporal, S3, the sim, the worker and the API."""
    settings = _settings(
        data_dir,
        {
            "api_port": api_port,
            "temporal_port": temporal_port,
            "temporal_ui_port": temporal_ui_port,
            "temporal_http_port": temporal_http_port,
            "temporal_metrics_port": temporal_metrics_port,
            "s3_port": s3_port,
            "sim_port": sim_port,
            "sim_gce_port": sim_gce_port,
        },
    )
    # Ports are checked before anything is written or started.
    problem = port_problem(port_claims(settings))
    if problem:
        err_console.print(f"[red]error:[/] {problem}", soft_wrap=True)
        raise typer.Exit(2)
    try:
        find_binary("temporal")
        find_binary("rclone")
    except FileNotFoundError as exc:
        err_console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    from sqlalchemy.exc import SQLAlchemyError

    try:
        stack = bootstrap(settings)
    except SQLAlchemyError as exc:
        url = _without_password(settings.resolved_database_url)
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        err_console.print(
            f"[red]error:[/] cannot prepare the database {url}: {reason}", soft_wrap=True
        )
        raise typer.Exit(1) from None
    raise typer.Exit(run_stack(stack))
