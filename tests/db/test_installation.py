"""One installation id per database: made once by the migrations, the same for every process
that reads it, overridable by the settings."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import Engine

from core.db import make_engine, migrate
from core.installation import installation_id, with_installation
from core.settings import Settings


def test_the_database_has_one_stable_installation_id(engine: Engine) -> None:
    first = installation_id(engine)
    assert re.fullmatch(r"i[0-9a-f]{8}", first)
    migrate(engine)  # migrating again (another process starting) keeps it
    again = make_engine(str(engine.url.render_as_string(hide_password=False)))
    try:
        assert installation_id(again) == first
    finally:
        again.dispose()
    assert with_installation(Settings(), engine).installation_id == first
    assert with_installation(Settings(installation_id="mine-01"), engine).installation_id == (
        "mine-01"
    )


def test_two_databases_are_two_installations(engine: Engine, tmp_path: Path) -> None:
    other = make_engine(f"sqlite:///{tmp_path / 'another-installation.db'}")
    try:
        migrate(other)
        assert installation_id(engine) != installation_id(other)
    finally:
        other.dispose()
