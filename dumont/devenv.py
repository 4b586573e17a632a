"""Files `dumont dev` keeps in its data dir: generated secrets and `dev.env`.

Created once and reused, so a restart on the same data dir finds the same keys. Standard
library only: the CLI reads `dev.env` on every command and must start fast.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

SECRETS_FILE = "secrets.json"
TOKEN_FILE = "dev-token"
DEV_ENV_FILE = "dev.env"


def write_private(path: Path, text: str) -> None:
    """Write `text` so that only the owner can ever read it (no window with looser mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True)
class DevSecrets:
    s3_access_key: str
    s3_secret_key: str
    vast_api_key: str
    sim_admin_token: str

    @classmethod
    def generate(cls) -> DevSecrets:
        return cls(
            s3_access_key="dumont" + secrets.token_hex(8),
            s3_secret_key=secrets.token_urlsafe(32),
            vast_api_key=secrets.token_hex(32),
            sim_admin_token=secrets.token_urlsafe(32),
        )


def load_or_create_secrets(data_dir: Path) -> DevSecrets:
    path = data_dir / SECRETS_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        fresh = asdict(DevSecrets.generate())
        # A secrets file from an older version keeps its keys and gains the new ones.
        merged = {key: stored.get(key) or fresh[key] for key in fresh}
        if merged != stored:
            write_private(path, json.dumps(merged, indent=2))
        return DevSecrets(**merged)
    created = DevSecrets.generate()
    write_private(path, json.dumps(asdict(created), indent=2))
    return created


def write_dev_env(data_dir: Path, values: dict[str, str]) -> Path:
    """`export` lines a shell can `source`; also read back by the CLI."""
    lines = ["# Written by `dumont dev`: source it to talk to the local stack."]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in values.items()]
    path = data_dir / DEV_ENV_FILE
    write_private(path, "\n".join(lines) + "\n")
    return path


def read_env_file(path: Path) -> dict[str, str]:
    """Parse `KEY=VALUE` / `export KEY=VALUE` lines (shell quoting allowed); missing → {}."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, rest = line.partition("=")
        if not sep or not key.isidentifier():
            continue
        parts = shlex.split(rest) if rest else [""]
        values[key] = parts[0] if parts else ""
    return values
