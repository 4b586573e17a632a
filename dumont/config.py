"""Where the CLI finds the API and its token: the environment first, then `dev.env`."""

from __future__ import annotations

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
