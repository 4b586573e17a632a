"""The embedded stack of `dumont dev`: where each service listens and how each is started."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import dumont
from core.settings import Settings
from dumont.devenv import DevSecrets
from dumont.ports import PortClaim
from dumont.supervisor import ChildSpec, http_answers, tcp_answers

LOOPBACK = "127.0.0.1"
# The directory holding the control plane's packages, so children import the same code.
PROJECT_ROOT = Path(dumont.__file__).resolve().parent.parent


def find_binary(name: str) -> str:
    """A binary installed by a PyPI wheel (next to this Python) or, failing that, on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"`{name}` not found next to {sys.executable} or on PATH; "
            f"install the control plane with pip (it depends on {name}-bin)"
        )
    return found


def port_claims(s: Settings) -> list[PortClaim]:
    return [
        PortClaim(s.api_port, "API", "DUMONT_API_PORT", "--api-port", s.api_host),
        PortClaim(s.temporal_port, "Temporal", "DUMONT_TEMPORAL_PORT", "--temporal-port"),
        PortClaim(
            s.temporal_ui_port, "Temporal UI", "DUMONT_TEMPORAL_UI_PORT", "--temporal-ui-port"
        ),
        PortClaim(
            s.temporal_http_port,
            "Temporal HTTP API",
            "DUMONT_TEMPORAL_HTTP_PORT",
            "--temporal-http-port",
        ),
        PortClaim(
            s.temporal_metrics_port,
            "Temporal metrics",
            "DUMONT_TEMPORAL_METRICS_PORT",
            "--temporal-metrics-port",
        ),
        PortClaim(s.s3_port, "S3", "DUMONT_S3_PORT", "--s3-port"),
        PortClaim(s.sim_port, "sim", "DUMONT_SIM_PORT", "--sim-port"),
        PortClaim(s.sim_gce_port, "sim GCE", "DUMONT_SIM_GCE_PORT", "--sim-gce-port"),
    ]


# The project the sim's GCE answers for in `dumont dev` (any name works there).
DEV_GCP_PROJECT = "dumont-dev"


def gce_ssh_port() -> int:
    """Where the sim's GCE machines listen for SSH on their own loopback addresses: 22 as on
    GCE when this process may bind it, else 2222 (the provider is told either way)."""
    if os.geteuid() == 0:
        return 22
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 2222
    return 22 if start <= 22 else 2222


@dataclass(frozen=True)
class Stack:
    """Addresses of every service, derived from the settings."""

    settings: Settings
    secrets: DevSecrets
    token: str

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def api_url(self) -> str:
        host = self.settings.api_host
        if host in ("0.0.0.0", "::", ""):  # listening everywhere: reach it on loopback
            host = LOOPBACK
        return f"http://{host}:{self.settings.api_port}"

    @property
    def temporal_address(self) -> str:
        return f"{LOOPBACK}:{self.settings.temporal_port}"

    @property
    def temporal_ui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.temporal_ui_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.s3_port}"

    @property
    def s3_root(self) -> Path:
        return self.data_dir / "s3"

    @property
    def sim_url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.sim_port}"

    @property
    def sim_gce_url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.sim_gce_port}"

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url

    def public_env(self) -> dict[str, str]:
        """What a user's shell needs (written to dev.env)."""
        return {
            "DUMONT_API_URL": self.api_url,
            "DUMONT_TOKEN": self.token,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "DUMONT_S3_ENDPOINT": self.s3_endpoint,
            "DUMONT_S3_ACCESS_KEY": self.secrets.s3_access_key,
            "DUMONT_S3_SECRET_KEY": self.secrets.s3_secret_key,
            "DUMONT_S3_BUCKET": self.settings.s3_bucket,
            "VAST_URL": self.sim_url,
            "VAST_API_KEY": self.secrets.vast_api_key,
            # The official client speaks plain HTTP to an endpoint with its scheme in it.
            "DUMONT_GCP_ENDPOINT": self.sim_gce_url,
            "DUMONT_GCP_PROJECT": DEV_GCP_PROJECT,
            "DUMONT_GCP_CREDENTIALS": "anonymous",
            "DUMONT_GCP_SSH_PORT": str(gce_ssh_port()),
            "DUMONT_SIM_ADMIN_TOKEN": self.secrets.sim_admin_token,
            "DUMONT_DATA_DIR": str(self.data_dir),
        }

    def service_env(self) -> dict[str, str]:
        """Environment of the worker and the API: the caller's, pointed at this stack."""
        env = dict(os.environ)
        env.update(self.public_env())
        del env["DUMONT_TOKEN"]  # the user's token; no service needs it
        env.update(
            {
                "DUMONT_DATABASE_URL": self.database_url,
                "DUMONT_TEMPORAL_ADDRESS": self.temporal_address,
                "DUMONT_TEMPORAL_NAMESPACE": self.settings.temporal_namespace,
                "DUMONT_TASK_QUEUE": self.settings.task_queue,
                "DUMONT_VAST_URL": self.sim_url,
                "DUMONT_VAST_API_KEY": self.secrets.vast_api_key,
                "DUMONT_S3_REGION": self.settings.s3_region,
                "DUMONT_API_HOST": self.settings.api_host,
                "DUMONT_API_PORT": str(self.settings.api_port),
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p
                ),
            }
        )
        # The local marketplace has no read rate limit: poll boots twice a second unless told
        # (a boot is seen within 0.5 s of its end, not 1 s; vast.ai's own default stays 3 s).
        env.setdefault("DUMONT_PROVIDER_POLL_SECONDS", "0.5")
        return env

    def infrastructure(self) -> list[ChildSpec]:
        """Temporal, S3 and the sim: they depend on nothing and start together."""
        from core import search_attributes  # temporalio is slow to import; only `dev` needs it

        s = self.settings
        temporal = [
            find_binary("temporal"), "server", "start-dev",
            "--ip", LOOPBACK,
            "--port", str(s.temporal_port),
            "--ui-port", str(s.temporal_ui_port),
            "--http-port", str(s.temporal_http_port),
            "--metrics-port", str(s.temporal_metrics_port),
            "--db-filename", str(self.data_dir / "temporal.db"),
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
            "--ui-disable-news-fetch",
            *search_attributes.dev_server_flags(),
        ]  # fmt: skip
        rclone = [
            find_binary("rclone"), "serve", "s3", str(self.s3_root),
            "--addr", f"{LOOPBACK}:{s.s3_port}",
            "--auth-key", f"{self.secrets.s3_access_key},{self.secrets.s3_secret_key}",
            "--config", "/dev/null",  # never read a user's rclone remotes
        ]  # fmt: skip
        sim = [
            sys.executable, "-m", "sim",
            "--data-dir", str(self.data_dir / "sim"),
            "--port", str(s.sim_port),
            "--gce-port", str(s.sim_gce_port),
            "--gce-ssh-port", str(gce_ssh_port()),
        ]  # fmt: skip
        env = self.service_env()
        # The sim's secrets go through its environment: on a command line `ps` shows them, and
        # argparse takes a token that starts with "-" (token_urlsafe makes some) for an option.
        sim_env = {**env, "DUMONT_SIM_API_KEY": self.secrets.vast_api_key}
        return [
            ChildSpec("temporal", temporal, env, tcp_answers(LOOPBACK, s.temporal_port)),
            ChildSpec("s3", rclone, env, tcp_answers(LOOPBACK, s.s3_port)),
            ChildSpec("sim", sim, sim_env, http_answers(f"{self.sim_url}/")),  # binds first
        ]

    def services(self) -> list[ChildSpec]:
        """The worker and the API, once what they connect to answers."""
        s = self.settings
        env = self.service_env()
        worker = [sys.executable, "-m", "worker"]
        api = [
            sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
            "--host", s.api_host, "--port", str(s.api_port),
        ]  # fmt: skip
        return [
            ChildSpec("worker", worker, env),
            ChildSpec("api", api, env, http_answers(f"{self.api_url}/health")),
        ]
