"""What works without an API: issuing tokens, finding the API and token, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from core.accounts import user_for_token
from core.db import make_engine, session_scope
from core.models import User
from dumont.config import load_client_config, load_sim_admin_config
from dumont.devenv import write_dev_env
from tests.cli.conftest import CLEARED_ENV, dumont, free_port


def test_token_create_writes_a_working_token_and_prints_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"  # not migrated yet: the command does it

    first = dumont("token", "create", "--user", "alice", env={"DUMONT_DATABASE_URL": url})
    second = dumont("token", "create", "--user", "alice", env={"DUMONT_DATABASE_URL": url})

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    token, other = first.stdout.strip(), second.stdout.strip()
    assert token.startswith("dmt_") and "\n" not in token and token != other
    engine = make_engine(url)
    with session_scope(engine) as session:
        users = session.exec(select(User)).all()
        assert [u.name for u in users] == ["alice"]
        assert user_for_token(session, token) == user_for_token(session, other) == users[0]
    engine.dispose()


def test_settings_from_the_environment_win_over_dev_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DUMONT_DATA_DIR", str(tmp_path))
    write_dev_env(tmp_path, {"DUMONT_API_URL": "http://127.0.0.1:1/", "DUMONT_TOKEN": "dmt_file"})

    from_file = load_client_config()
    monkeypatch.setenv("DUMONT_TOKEN", "dmt_env")
    overridden = load_client_config()

    assert (from_file.api_url, from_file.token) == ("http://127.0.0.1:1", "dmt_file")
    assert (overridden.api_url, overridden.token) == ("http://127.0.0.1:1", "dmt_env")


def test_an_unreachable_api_names_the_url_it_tried(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    write_dev_env(tmp_path, {"DUMONT_API_URL": url, "DUMONT_TOKEN": "dmt_x"})

    result = dumont("machines", "ls", env={"DUMONT_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 1
    assert f"cannot reach the Dumont API at {url}" in result.stderr
    assert "Traceback" not in result.output


def test_without_a_token_the_cli_says_how_to_get_one(tmp_path: Path) -> None:
    result = dumont("offers", env={"DUMONT_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 1
    assert "no API token" in result.stderr and "dumont dev" in result.stderr


def test_sim_commands_find_the_sim_in_dev_env_unless_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DUMONT_DATA_DIR", str(tmp_path))
    write_dev_env(
        tmp_path, {"VAST_URL": "http://127.0.0.1:2/", "DUMONT_SIM_ADMIN_TOKEN": "from-file"}
    )

    from_file = load_sim_admin_config()
    monkeypatch.setenv("VAST_URL", "http://127.0.0.1:3")
    overridden = load_sim_admin_config()

    assert (from_file.url, from_file.token) == ("http://127.0.0.1:2", "from-file")
    assert (overridden.url, overridden.token) == ("http://127.0.0.1:3", "from-file")


def test_an_unreachable_sim_names_the_url_it_tried(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    write_dev_env(tmp_path, {"VAST_URL": url, "DUMONT_SIM_ADMIN_TOKEN": "x"})

    result = dumont("sim", "faults", "ls", env={"DUMONT_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 1
    assert f"cannot reach the sim at {url}" in result.stderr
    assert "Traceback" not in result.output
