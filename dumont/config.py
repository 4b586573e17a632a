"""Where the CLI finds the API and its token: the environment first, then `dev.env`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from dumont.devenv import DEV_ENV_FILE, read_env_file


class ConfigError(Exception):
    """The CLI cannot tell which API to call or with which token."""


@dataclass(frozen=True)
class ClientConfig:
    api_url: str
    token: str
    dev_env: Path  # the file consulted for what the environment left unset


def load_client_config() -> ClientConfig:
    """`DUMONT_API_URL` / `DUMONT_TOKEN`, else the values `dumont dev` wrote to the data dir
    (`DUMONT_DATA_DIR`, default ~/.dumont)."""
    settings = Settings()
    dev_env = settings.data_dir.expanduser() / DEV_ENV_FILE
    from_file = read_env_file(dev_env)
    api_url = (
        settings.api_url
        or from_file.get("DUMONT_API_URL")
        or f"http://{settings.api_host}:{settings.api_port}"
    )
    token = settings.token.get_secret_value() if settings.token else from_file.get("DUMONT_TOKEN")
    if not token:
        raise ConfigError(
            f"no API token: set DUMONT_TOKEN, or run `dumont dev` (it writes {dev_env}), "
            "or create one with `dumont token create`"
        )
    return ClientConfig(api_url=api_url.rstrip("/"), token=token, dev_env=dev_env)


@dataclass(frozen=True)
class SimAdminConfig:
    """Where the local cloud's admin API is (`dumont dev`'s sim) and its token, if it has one."""

    url: str
    token: str | None


def load_sim_admin_config() -> SimAdminConfig:
    """`VAST_URL` / `DUMONT_SIM_ADMIN_TOKEN`, else the values `dumont dev` wrote to dev.env."""
    dev_env = Settings().data_dir.expanduser() / DEV_ENV_FILE
    from_file = read_env_file(dev_env)

    def setting(*names: str) -> str | None:
        for source in (os.environ, from_file):
            for name in names:
                if source.get(name):
                    return source[name]
        return None

    url = setting("VAST_URL", "DUMONT_VAST_URL")
    if not url:
        raise ConfigError(
            f"no sim URL: set VAST_URL, or run `dumont dev` (it writes {dev_env}); "
            "`dumont sim` only talks to the local cloud"
        )
    return SimAdminConfig(url=url.rstrip("/"), token=setting("DUMONT_SIM_ADMIN_TOKEN"))
