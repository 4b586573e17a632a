"""`dumont gateway`: the serverless gateway in its own process, for running several behind a
load balancer (each holds its own queue; the machine's workflow makes one resume of them all)."""

from __future__ import annotations

from typing import Annotated

import typer

from core.settings import get_settings


def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default DUMONT_GATEWAY_PORT, 8600).")
    ] = None,
) -> None:
    """Run the serverless gateway: /serverless/{machine_id}/... to each machine's service."""
    from api.gateway.standalone import serve  # the server's imports only for this command

    settings = get_settings()
    serve(settings, host=host, port=port if port is not None else settings.gateway_port)
