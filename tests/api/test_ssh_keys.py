"""SSH keys: add, list, delete, per owner; bad or duplicate keys are refused."""

from __future__ import annotations

import asyncssh
import pytest

from core.models import SshKey
from tests.api.conftest import Api


def new_key(comment: str = "me@laptop") -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519", comment=comment)


def public(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


async def test_add_list_delete(api_any_db: Api) -> None:
    api = api_any_db
    key = new_key()
    added = await api.call(
        "POST", "/api/v1/ssh-keys", json={"name": "laptop", "public_key": public(key) + "\n"}
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["fingerprint"] == key.get_fingerprint("sha256")
    assert body["fingerprint"].startswith("SHA256:")
    assert body["public_key"] == public(key)  # stored in one-line form, trailing newline gone
    assert (await api.call("GET", "/api/v1/ssh-keys")).json() == [body]

    assert (await api.call("DELETE", f"/api/v1/ssh-keys/{body['id']}")).status_code == 204
    assert (await api.call("GET", "/api/v1/ssh-keys")).json() == []
    assert (await api.call("DELETE", f"/api/v1/ssh-keys/{body['id']}")).status_code == 404


async def test_a_duplicate_key_conflicts(api_any_db: Api) -> None:
    api = api_any_db
    key = public(new_key())
    assert (
        await api.call("POST", "/api/v1/ssh-keys", json={"name": "a", "public_key": key})
    ).status_code == 201
    again = await api.call("POST", "/api/v1/ssh-keys", json={"name": "b", "public_key": key})
    assert again.status_code == 409
    assert "already added" in again.json()["detail"]
    assert api.count(SshKey) == 1
    # Another owner may add the same key: keys are per owner.
    theirs = await api.call(
        "POST", "/api/v1/ssh-keys", token=api.bob, json={"name": "shared", "public_key": key}
    )
    assert theirs.status_code == 201


async def test_keys_are_per_owner(api: Api) -> None:
    mine = (
        await api.call(
            "POST", "/api/v1/ssh-keys", json={"name": "mine", "public_key": public(new_key())}
        )
    ).json()
    assert (await api.call("GET", "/api/v1/ssh-keys", token=api.bob)).json() == []
    stolen = await api.call("DELETE", f"/api/v1/ssh-keys/{mine['id']}", token=api.bob)
    assert stolen.status_code == 404
    assert [k["id"] for k in (await api.call("GET", "/api/v1/ssh-keys")).json()] == [mine["id"]]


PRIVATE = new_key().export_private_key().decode()

BAD_KEYS = [
    ("hello", "not an OpenSSH public key"),
    ("ssh-ed25519 AAAAnotbase64!!", "not an OpenSSH public key"),
    ("ssh-rsa " + public(new_key()).split()[1], "not an OpenSSH public key"),
    (PRIVATE, "this is a private key"),
    (public(new_key()) + "\n" + public(new_key()), "one public key per request"),
]


@pytest.mark.parametrize(
    ("text", "why"), BAD_KEYS, ids=["word", "base64", "type", "private", "two"]
)
async def test_a_bad_key_is_refused_and_not_echoed(api: Api, text: str, why: str) -> None:
    response = await api.call("POST", "/api/v1/ssh-keys", json={"name": "k", "public_key": text})
    assert response.status_code == 422
    error = response.json()
    assert [e["loc"] for e in error["detail"]] == [["body", "public_key"]]
    assert error["message"].startswith("public_key: ") and why in error["message"]
    for line in text.splitlines():  # a pasted private key must not come back
        assert line[-40:] not in response.text
    assert api.count(SshKey) == 0


async def test_a_key_needs_a_name(api: Api) -> None:
    response = await api.call("POST", "/api/v1/ssh-keys", json={"public_key": public(new_key())})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "name"]]
    assert api.count(SshKey) == 0
