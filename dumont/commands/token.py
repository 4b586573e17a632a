"""`dumont token create`: an admin command that writes to the database directly."""

from __future__ import annotations

from typing import Annotated

import typer

from core.settings import Settings
from dumont.output import err_console, fail

app = typer.Typer(help="API tokens (run where the database is reachable).", no_args_is_help=True)


@app.command("create")
def create(
    user: Annotated[str, typer.Option(help="User name; created if new.")] = "dev",
    name: Annotated[str, typer.Option(help="A label for this token.")] = "cli",
) -> None:
    """Issue a token for a user and print it; it is shown only this once."""
    # Imported here so that the CLI's other commands start without the database libraries.
    from sqlalchemy.exc import SQLAlchemyError

    from core.accounts import get_or_create_user, issue_token
    from core.db import make_engine, migrate, session_scope

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        migrate(engine)
        with session_scope(engine) as session:
            account = get_or_create_user(session, user)
            token = issue_token(session, account.id, name=name)
    except SQLAlchemyError as exc:
        raise fail(
            f"cannot write to the database: {exc.__class__.__name__}: {exc.args[0]}"
        ) from None
    finally:
        engine.dispose()
    # The token alone on stdout, so `export DUMONT_TOKEN=$(dumont token create)` works.
    print(token)
    err_console.print(f"Token for user [bold]{user}[/] ({account.id}); it is not shown again.")
