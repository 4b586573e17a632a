"""The CLI against the real API (uvicorn, SQLite, Temporal dev server; no worker here)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncssh

from core.db import make_engine, session_scope
from core.models import Machine
from tests.cli.conftest import ApiUser, dumont


def _public_key_file(tmp_path: Path, comment: str) -> Path:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    private = tmp_path / "id_ed25519"
    private.write_bytes(key.export_private_key())
    public = tmp_path / "id_ed25519.pub"
    public.write_bytes(key.export_public_key())
    return public


def test_ssh_keys_add_list_and_remove(api_user: ApiUser, tmp_path: Path) -> None:
    public = _public_key_file(tmp_path, "me@laptop")

    added = dumont("ssh-keys", "add", str(public), "--json", env=api_user.env())
    listed = dumont("ssh-keys", "ls", env=api_user.env())

    assert added.exit_code == 0, added.output
    key = json.loads(added.stdout)
    assert key["name"] == "me@laptop"  # the key's comment when no --name
    assert listed.exit_code == 0 and "me@laptop" in listed.stdout
    assert key["fingerprint"] in listed.stdout

    again = dumont("ssh-keys", "add", str(public), env=api_user.env())
    assert again.exit_code == 1 and "you already added this key" in again.stderr

    removed = dumont("ssh-keys", "rm", str(key["id"]), env=api_user.env())
    after = dumont("ssh-keys", "ls", "--json", env=api_user.env())
    assert removed.exit_code == 0
    assert json.loads(after.stdout) == []


def test_a_private_key_is_refused_before_anything_is_sent(
    api_user: ApiUser, tmp_path: Path
) -> None:
    _public_key_file(tmp_path, "me@laptop")

    result = dumont("ssh-keys", "add", str(tmp_path / "id_ed25519"), env=api_user.env())

    assert result.exit_code == 1
    assert "private key" in result.stderr and "id_ed25519.pub" in result.stderr
    assert json.loads(dumont("ssh-keys", "ls", "--json", env=api_user.env()).stdout) == []


def test_create_without_waiting_then_list_and_show(api_user: ApiUser) -> None:
    created = dumont(
        "machines", "create", "--gpu", "RTX 4090", "--image", "pytorch/pytorch", "--disk", "20",
        "--region", "eu", "--name", "trainer", "--no-wait", "--json", env=api_user.env(),
    )  # fmt: skip

    assert created.exit_code == 0, created.output
    machine = json.loads(created.stdout)
    assert machine["status"] == "starting" and machine["region"] == "EU"
    listed = dumont("machines", "ls", env=api_user.env())
    assert listed.exit_code == 0
    assert machine["id"] in listed.stdout and "trainer" in listed.stdout
    assert "RTX 4090" in listed.stdout
    shown = dumont("machines", "show", machine["id"], "--json", env=api_user.env())
    assert json.loads(shown.stdout)["disk_gb"] == 20
    events = dumont("machines", "events", machine["id"], "--json", env=api_user.env())
    assert [e["event_type"] for e in json.loads(events.stdout)][0] == "created"


def test_api_errors_print_the_servers_message_without_a_traceback(api_user: ApiUser) -> None:
    missing = dumont("machines", "show", "vast_nope", env=api_user.env())
    invalid = dumont(
        "machines", "create", "--gpu", "RTX 4090", "--image", "x", "--disk", "5",
        env=api_user.env(),
    )  # fmt: skip
    bad_region = dumont(
        "machines", "create", "--gpu", "RTX 4090", "--image", "x", "--region", "Mars",
        env=api_user.env(),
    )  # fmt: skip
    unauthorised = dumont("machines", "ls", env=api_user.env(DUMONT_TOKEN="dmt_wrong"))

    assert missing.exit_code == 1 and "machine vast_nope not found" in missing.stderr
    assert invalid.exit_code == 1 and "disk_gb" in invalid.stderr
    assert bad_region.exit_code == 1 and "region" in bad_region.stderr
    assert unauthorised.exit_code == 1 and "DUMONT_TOKEN" in unauthorised.stderr
    for result in (missing, invalid, bad_region, unauthorised):
        assert "Traceback" not in result.output
    empty = dumont("machines", "ls", "--json", env=api_user.env())
    assert json.loads(empty.stdout) == []  # bad input created nothing


def test_ls_leaves_destroyed_machines_out_unless_asked(api_user: ApiUser) -> None:
    engine = make_engine(api_user.database_url)
    ids = {}
    with session_scope(engine) as session:
        for status in ("deleted", "destroyed"):  # deleted: hibernated long, can still be woken
            ids[status] = f"vast_{uuid.uuid4().hex[:10]}"
            session.add(
                Machine(
                    id=ids[status],
                    owner_id=api_user.user_id,
                    gpu_name="RTX 4090",
                    image="pytorch/pytorch",
                    disk_gb=20,
                    status=status,
                )
            )
    engine.dispose()

    listed = dumont("machines", "ls", env=api_user.env())
    as_json = dumont("machines", "ls", "--json", env=api_user.env())
    everything = dumont("machines", "ls", "--all", "--json", env=api_user.env())

    assert listed.exit_code == 0, listed.output
    assert ids["deleted"] in listed.stdout and ids["destroyed"] not in listed.stdout
    assert "1 destroyed not shown (--all)" in listed.stdout
    assert ids["destroyed"] not in {m["id"] for m in json.loads(as_json.stdout)}
    assert set(ids.values()) <= {m["id"] for m in json.loads(everything.stdout)}
