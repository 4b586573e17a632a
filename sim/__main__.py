"""`python -m sim --data-dir DIR --port PORT --api-key KEY`: run the local cloud."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn

from sim.config import SimConfig
from sim.server import create_app


def parse_args(argv: list[str] | None = None) -> SimConfig:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=os.environ.get("DUMONT_SIM_API_KEY"))
    parser.add_argument("--admin-token", default=os.environ.get("DUMONT_SIM_ADMIN_TOKEN"))
    parser.add_argument(
        "--boot-delay", type=float, default=3.0, help="seconds from create to running"
    )
    parser.add_argument("--seed", type=int, default=1, help="which market (ignored once saved)")
    parser.add_argument("--isolation", choices=("auto", "namespace", "plain"), default="auto")
    parser.add_argument(
        "--network",
        choices=("auto", "netns", "host"),
        default=os.environ.get("DUMONT_SIM_NETWORK", "auto"),
        help="machines' networks (DUMONT_SIM_NETWORK, e.g. for `dumont dev`)",
    )
    parser.add_argument("--rate-limit", action="store_true", help="enforce vast.ai's intervals")
    parser.add_argument("--rate-limit-scale", type=float, default=1.0)
    parser.add_argument("--stop-grace", type=float, default=1.0)
    parser.add_argument("--offers", type=int, default=320)
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("--api-key (or DUMONT_SIM_API_KEY) is required")
    return SimConfig(
        data_dir=args.data_dir,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        admin_token=args.admin_token,
        boot_delay=args.boot_delay,
        seed=args.seed,
        isolation=args.isolation,
        network=args.network,
        rate_limit=args.rate_limit,
        rate_limit_scale=args.rate_limit_scale,
        stop_grace=args.stop_grace,
        offer_count=args.offers,
    )


async def serve(config: SimConfig) -> None:
    # Bind first so the port is known (and connections queue) before the app has restored.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    sock.listen(512)
    port = sock.getsockname()[1]

    def announce() -> None:
        # The socket is already listening: calls made now queue until uvicorn accepts them.
        sys.stdout.write(f"sim ready on http://{config.host}:{port} data_dir={config.data_dir}\n")
        sys.stdout.flush()

    app = create_app(config, on_ready=announce)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    await server.serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # asyncssh logs every channel at INFO.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
