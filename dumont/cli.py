"""The `dumont` command."""

from __future__ import annotations

import typer

from dumont.commands import (
    alerts,
    machines,
    serverless,
    sim,
    snapshots,
    ssh_keys,
    standby,
    token,
)
from dumont.commands.gateway import gateway
from dumont.commands.offers import offers
from dumont.dev import dev

app = typer.Typer(
    help="Dumont Cloud: GPU machines that sleep when idle and wake on demand.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
)
app.command("dev")(dev)
app.add_typer(machines.app, name="machines")
app.command("offers")(offers)
app.add_typer(ssh_keys.app, name="ssh-keys")
app.add_typer(token.app, name="token")
app.add_typer(alerts.app, name="alerts")
app.add_typer(snapshots.app, name="snapshots")
app.add_typer(serverless.app, name="serverless")
app.add_typer(standby.app, name="standby")
app.add_typer(sim.app, name="sim")
app.command("gateway")(gateway)


def main() -> None:
    app()
