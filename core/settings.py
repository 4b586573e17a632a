"""Settings for every Dumont process, read from `DUMONT_*` environment variables and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".dumont"


class Settings(BaseSettings):
    """One settings object shared by the API, the worker, the CLI and `dumont dev`."""

    model_config = SettingsConfigDict(
        env_prefix="DUMONT_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite in the data dir when unset."
    )

    # Temporal
    temporal_address: str = Field(
        default="127.0.0.1:7233",
        validation_alias=AliasChoices("DUMONT_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = "default"
    task_queue: str = "dumont-machines"

    # Ports of the embedded stack (`dumont dev`)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    # Left to itself the dev server picks these at random, and a port picked is not yet bound:
    # an outgoing connection can take it meanwhile and the server fails to start.
    temporal_http_port: int = 7243
    temporal_metrics_port: int = 7244
    s3_port: int = 9000
    sim_port: int = 8500
    sim_gce_port: int = 8501  # the sim's Compute Engine endpoint

    # Object storage
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "dumont"
    s3_region: str = "auto"

    # Snapshots (core/snapshots)
    snapshot_keep_last: int = Field(default=3, ge=1, le=1000)  # committed snapshots per machine
    # How long a `deleted` machine's snapshots are kept; 0 keeps them until the user deletes.
    snapshot_deleted_retention_days: int = Field(default=0, ge=0)
    snapshot_price_per_gb_month: float = Field(default=0.015, ge=0)  # R2's price
    # Packs of an unfinished snapshot stay this long, so a retried snapshot resumes from them.
    snapshot_gc_grace_hours: float = Field(default=24.0, ge=0)
    snapshot_pack_mib: int = Field(default=16, ge=1, le=256)
    snapshot_url_ttl_seconds: int = Field(default=21600, ge=60, le=604800)

    # vast.ai (the real one, or the local marketplace in sim/)
    vast_url: str = Field(
        default="https://console.vast.ai",
        validation_alias=AliasChoices("DUMONT_VAST_URL", "VAST_URL"),
    )
    vast_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DUMONT_VAST_API_KEY", "VAST_API_KEY")
    )

    # Google Compute Engine (the real one, or the GCE-compatible endpoint in sim/)
    gcp_project: str | None = Field(
        default=None, validation_alias=AliasChoices("DUMONT_GCP_PROJECT", "GOOGLE_CLOUD_PROJECT")
    )
    # Unset: Google's own endpoint. `dumont dev` points it at the sim (with its http:// scheme).
    gcp_endpoint: str | None = None
    # "default": Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS names a
    # service-account key file); "anonymous": none, for the local cloud only.
    gcp_credentials: Literal["default", "anonymous"] = "default"
    # Dumont logs in to GCP VMs as this metadata user (GCE images refuse root), on this port.
    gcp_ssh_user: str = Field(default="dumont", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    gcp_ssh_port: int = Field(default=22, ge=1, le=65535)

    # This installation, on every instance it creates (GCE labels, vast.ai labels), so two
    # installations sharing a cloud account never touch each other's instances. Unset, the
    # database's own (made once, core/installation.py).
    installation_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{2,29}$")

    # Machine lifecycle
    boot_timeout_seconds: int = Field(default=900, ge=10)
    provision_attempts: int = Field(default=3, ge=1, le=20)
    offers_per_attempt: int = Field(default=5, ge=1, le=50)
    # How often a boot or a stop asks the provider how it is doing. vast.ai rate-limits
    # instance reads per account, so a fleet booting at once shares this budget.
    provider_poll_seconds: float = Field(default=3.0, gt=0, le=60)
    # How soon a dead worker's long activity (boot wait, create, destroy) is retried elsewhere.
    heartbeat_timeout_seconds: int = Field(default=30, ge=2, le=600)
    # Machines one owner may have holding (or about to hold) an instance: a runaway script or a
    # leaked token cannot rent a whole marketplace. Creates and wakes past it answer 409.
    max_machines_per_owner: int = Field(default=50, ge=1, le=100_000)

    # The agent and the fleet monitor
    # The API's URL as machines reach it: the agent posts its reports there. Unset, the API's
    # own address (`api_host`:`api_port`, loopback when it listens everywhere), which is right
    # only where machines run on this host (`dumont dev`); production sets it.
    public_api_url: str | None = None
    agent_interval_seconds: int = Field(default=30, ge=1, le=3600)
    # Re-installs of an agent that went offline are at least this far apart.
    agent_reinstall_seconds: int = Field(default=300, ge=0)
    monitor_interval_seconds: int = Field(default=30, ge=1, le=3600)
    # The fleet reconciler: every provider's instances carrying this installation's labels,
    # against the machines. An instance no live machine owns (it bills for nothing) is logged
    # at once and, with policy "destroy", destroyed once it has been an orphan this long
    # (never less than a create may take, so a create not yet recorded is left alone).
    reconcile_interval_seconds: int = Field(default=300, ge=10, le=86400)
    orphan_grace_seconds: int = Field(default=600, ge=0, le=7 * 86400)
    orphan_policy: Literal["report", "destroy"] = "destroy"

    # Auto-hibernation
    # Setup time after a boot or a wake that never counts as idle.
    idle_grace_seconds: int = Field(default=120, ge=0, le=86400)
    snapshot_attempts: int = Field(default=4, ge=1, le=20)
    snapshot_retry_seconds: int = Field(default=10, ge=1, le=3600)
    auto_hibernate_retry_seconds: int = Field(default=600, ge=1, le=86400)
    wake_offer_attempts: int = Field(default=3, ge=1, le=20)
    wake_offer_retry_seconds: int = Field(default=30, ge=1, le=3600)
    # Pause and resume: how long a resume waits for the instance to start on its own host
    # before it wakes the pause's snapshot on a new offer instead.
    resume_same_host_seconds: int = Field(default=60, ge=5, le=3600)

    # Serverless mode and its gateway
    # The lowest `idle_timeout_minutes` the API takes (the seed's 5; tests lower it).
    serverless_min_idle_minutes: float = Field(default=5, gt=0, le=60)
    # A gateway tells each machine's workflow about its traffic at most this often; open
    # requests hold the machine up for three intervals past the last report.
    gateway_report_seconds: int = Field(default=30, ge=1, le=600)
    # Where clients reach the gateway (the answers' `gateway_url`); unset, the API's address.
    gateway_public_url: str | None = None
    # `dumont gateway`: the port of a gateway in its own process.
    gateway_port: int = 8600

    # The CLI
    api_url: str | None = None
    token: SecretStr | None = None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'dumont.db'}"

    @field_validator("public_api_url")
    @classmethod
    def _reachable_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "DUMONT_PUBLIC_API_URL must be an http(s) URL machines can reach, "
                "e.g. https://dumont.example.com"
            )
        if parts.query or parts.fragment:
            raise ValueError("DUMONT_PUBLIC_API_URL takes no query or fragment")
        return value.rstrip("/")

    @property
    def agent_api_url(self) -> str:
        """Where agents post their reports."""
        if self.public_api_url is not None:
            return self.public_api_url
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.api_port}"

    @property
    def ssh_key_path(self) -> Path:
        """Dumont's own private key, used by activities to reach machines."""
        return self.data_dir / "ssh" / "id_ed25519"


@lru_cache
def get_settings() -> Settings:
    return Settings()
