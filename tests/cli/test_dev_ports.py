"""`dumont dev` refuses a taken port with one line naming it and how to move it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cli.conftest import dumont, free_port


@pytest.mark.parametrize(
    ("option", "service", "setting"),
    [
        ("--api-port", "API", "DUMONT_API_PORT"),
        ("--temporal-ui-port", "Temporal UI", "DUMONT_TEMPORAL_UI_PORT"),
        ("--sim-port", "sim", "DUMONT_SIM_PORT"),
        ("--temporal-http-port", "Temporal HTTP API", "DUMONT_TEMPORAL_HTTP_PORT"),
    ],
)
def test_a_port_in_use_is_one_line_and_exit_code_2(
    tmp_path: Path, option: str, service: str, setting: str
) -> None:
    options = {
        "--api-port": free_port(),
        "--temporal-port": free_port(),
        "--temporal-ui-port": free_port(),
        "--temporal-http-port": free_port(),
        "--temporal-metrics-port": free_port(),
        "--s3-port": free_port(),
        "--sim-port": free_port(),
    }
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        options[option] = taken.getsockname()[1]
        args = [item for pair in options.items() for item in (pair[0], str(pair[1]))]
        result = dumont("dev", "--data-dir", str(data_dir), *args)

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: port {options[option]} is in use ({service}); set {setting} or {option}"
    ]
    assert not data_dir.exists()  # nothing was written or started


def test_a_port_set_from_the_environment_is_named_by_its_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "DUMONT_API_PORT": str(free_port()),
            "DUMONT_TEMPORAL_PORT": str(free_port()),
            "DUMONT_TEMPORAL_UI_PORT": str(free_port()),
            "DUMONT_S3_PORT": str(port),
        }
        result = dumont("dev", "--data-dir", str(tmp_path / "data"), env=env)

    assert result.exit_code == 2
    assert f"port {port} is in use (S3); set DUMONT_S3_PORT or --s3-port" in result.stderr
