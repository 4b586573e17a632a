"""`dumont machines` and a machine's service, against the real API (no worker): create with
ports, env and an on-start; show and ls print each port's public address."""

from __future__ import annotations

import json

from tests.cli.conftest import ApiUser, add_machine, dumont

SECRET = "hf_0b1c2d3e4f5a6b7c"


def test_create_with_ports_env_and_an_on_start(api_user: ApiUser) -> None:
    created = dumont(
        "machines", "create", "--gpu", "RTX 4090", "--image", "vllm/vllm-openai",
        "--port", "8000", "--port", "53/udp", "--env", "MODEL=llama-3-8b", "--env", "HF_TOKEN",
        "--on-start", "vllm serve $MODEL --port 8000", "--no-wait", "--json",
        env=api_user.env(HF_TOKEN=SECRET),
    )  # fmt: skip

    assert created.exit_code == 0, created.output
    machine = json.loads(created.stdout)
    assert machine["ports"] == {"8000/tcp": None, "53/udp": None}
    assert machine["env_names"] == ["MODEL", "HF_TOKEN"]
    assert machine["on_start"] == "vllm serve $MODEL --port 8000"
    assert SECRET not in created.stdout
    shown = dumont("machines", "show", machine["id"], env=api_user.env())
    assert shown.exit_code == 0, shown.output
    assert "8000/tcp → -, 53/udp → -" in shown.stdout  # not published while starting
    assert "MODEL, HF_TOKEN" in shown.stdout and "vllm serve $MODEL --port 8000" in shown.stdout


def test_bad_service_options_say_what_is_wrong_and_create_nothing(api_user: ApiUser) -> None:
    base = ("machines", "create", "--gpu", "RTX 4090", "--image", "x", "--no-wait")
    port_22 = dumont(*base, "--port", "22", env=api_user.env())
    no_name = dumont(*base, "--env", "=x", env=api_user.env())
    unset = dumont(*base, "--env", "DUMONT_TEST_UNSET_VARIABLE", env=api_user.env())

    assert port_22.exit_code == 1 and "ports: ports[0]: port 22 is Dumont's SSH port" in (
        port_22.stderr
    )
    assert no_name.exit_code == 1 and "--env: give NAME=value" in no_name.stderr
    assert unset.exit_code == 1 and "set DUMONT_TEST_UNSET_VARIABLE in your environment" in (
        unset.stderr
    )
    assert json.loads(dumont("machines", "ls", "--json", env=api_user.env()).stdout) == []


def test_show_and_ls_print_the_published_addresses(api_user: ApiUser) -> None:
    machine_id = add_machine(
        api_user,
        declared_ports=["8000/tcp", "53/udp"],
        ports={"8000/tcp": "203.0.113.7:41234"},
    )

    shown = dumont("machines", "show", machine_id, env=api_user.env())
    listed = dumont("machines", "ls", env=api_user.env())

    assert shown.exit_code == 0, shown.output
    assert "8000/tcp → 203.0.113.7:41234, 53/udp → -" in shown.stdout
    assert listed.exit_code == 0, listed.output
    assert "PORTS" in listed.stdout and "8000/tcp→203.0.113.7:41234" in listed.stdout
