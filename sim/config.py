"""How one sim process is set up: where its state lives, where it listens, how it behaves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Isolation = Literal["auto", "namespace", "plain"]
Network = Literal["auto", "netns", "host"]


@dataclass
class SimConfig:
    data_dir: Path
    api_key: str
    host: str = "127.0.0.1"
    port: int = 0
    # None leaves the admin API open; the sim listens on loopback by default.
    admin_token: str | None = None
    boot_delay: float = 3.0
    seed: int = 1
    # "auto" uses a private mount namespace per session when `unshare -m` works.
    isolation: Isolation = "auto"
    # "auto" gives each machine that declares TCP ports its own network namespace (ports
    # published on their own host ports) when root, `ip` and `pasta` allow it.
    network: Network = "auto"
    # vast.ai's documented per-endpoint minimum intervals, off unless asked for.
    rate_limit: bool = False
    rate_limit_scale: float = 1.0
    # docker stop's grace: SIGTERM, then SIGKILL after this many seconds.
    stop_grace: float = 1.0
    offer_count: int = 320
    # The Compute Engine endpoint's own port (0: a free one) and the port every GCE
    # machine's SSH server takes on its own loopback address (None: 22 if bindable, else 2222).
    gce_port: int = 0
    gce_ssh_port: int | None = None
