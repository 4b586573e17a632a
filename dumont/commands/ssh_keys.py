"""`dumont ssh-keys ...`: the public keys installed on your machines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dumont.client import DumontClient
from dumont.config import load_client_config
from dumont.output import console, fail, print_json, reports_errors, table, when

app = typer.Typer(
    help="Manage the SSH public keys installed on your machines.", no_args_is_help=True
)


def read_public_key(path_or_key: str) -> tuple[str, str]:
    """(public key, default name) from a .pub file or a pasted key. A private key is refused
    here, so it never leaves this computer."""
    path = Path(path_or_key).expanduser()
    looks_like_key = path_or_key.lstrip().startswith(("ssh-", "ecdsa-", "sk-"))
    if not looks_like_key and path.is_file():
        text = path.read_text().strip()
        default_name = path.name.removesuffix(".pub")
    elif looks_like_key:
        text = path_or_key.strip()
        default_name = ""
    else:
        raise fail(f"{path_or_key} is neither a file nor an OpenSSH public key")
    if "PRIVATE KEY" in text:
        hint = f" ({path}.pub)" if Path(f"{path}.pub").is_file() else ""
        raise fail(f"that is a private key: pass the public key{hint}")
    parts = text.split()
    comment = " ".join(parts[2:]) if len(parts) > 2 else ""
    return text, comment or default_name or "key"


@app.command("add")
@reports_errors
def add(
    path_or_key: Annotated[str, typer.Argument(help="A .pub file or the key itself.")],
    name: Annotated[str | None, typer.Option(help="Defaults to the key's comment.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add a public key; new machines accept it."""
    public_key, default_name = read_public_key(path_or_key)
    with DumontClient(load_client_config()) as client:
        key = client.add_ssh_key(name or default_name, public_key)
    if as_json:
        print_json(key)
    else:
        console.print(f"Added key {key['id']} ({key['name']}, {key['fingerprint']})")


@app.command("ls")
@reports_errors
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List your keys."""
    with DumontClient(load_client_config()) as client:
        keys = client.list_ssh_keys()
    if as_json:
        print_json(keys)
        return
    if not keys:
        console.print("No SSH keys yet: `dumont ssh-keys add ~/.ssh/id_ed25519.pub`")
        return
    rows = table("ID", "NAME", "FINGERPRINT", "ADDED", keep_whole=("ID", "FINGERPRINT"))
    for key in keys:
        rows.add_row(str(key["id"]), key["name"], key["fingerprint"], when(key.get("created_at")))
    console.print(rows)


@app.command("rm")
@reports_errors
def remove(key_id: Annotated[int, typer.Argument(help="Key id (see `ssh-keys ls`).")]) -> None:
    """Remove a key."""
    with DumontClient(load_client_config()) as client:
        client.delete_ssh_key(key_id)
    console.print(f"Removed key {key_id}")
