"""`python -m sim --data-dir DIR --port PORT --api-key KEY`: run the local cloud."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from sim.config import SimConfig
from sim.server import create_apps


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
    parser.add_argument("--gce-port", type=int, default=0, help="Compute Engine API; 0: free")
    parser.add_argument(
        "--gce-ssh-port",
        type=int,
        default=None,
        help="GCE machines' SSH port on their own addresses (default 22 if bindable, else 2222)",
    )
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
        gce_port=args.gce_port,
        gce_ssh_port=args.gce_ssh_port,
    )


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


class _Follower(uvicorn.Server):
    """The GCE server: the vast server owns the signals and the lifespan; this one stops
    when told to."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(config: SimConfig) -> None:
    # Bind first so the ports are known (and connections queue) before the apps have restored.
    sock = _listen(config.host, config.port)
    gce_sock = _listen(config.host, config.gce_port)
    port, gce_port = sock.getsockname()[1], gce_sock.getsockname()[1]
    apps = create_apps(config, on_ready=lambda: announce())

    def announce() -> None:
        # The sockets are already listening: calls made now queue until uvicorn accepts them.
        sys.stdout.write(
            f"sim ready on http://{config.host}:{port} gce=http://{config.host}:{gce_port} "
            f"gce_ssh_port={apps.sim.gce.ssh_port} data_dir={config.data_dir}\n"
        )
        sys.stdout.flush()

    server = uvicorn.Server(
        uvicorn.Config(apps.vast, log_level="warning", access_log=False, lifespan="on")
    )
    gce_server = _Follower(
        uvicorn.Config(apps.gce, log_level="warning", access_log=False, lifespan="off")
    )
    gce_task = asyncio.create_task(gce_server.serve(sockets=[gce_sock]))
    try:
        await server.serve(sockets=[sock])
    finally:
        gce_server.should_exit = True
        await gce_task


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
