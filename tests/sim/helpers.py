"""Small helpers shared by the sim tests: keys, SSH connections, renting an offer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import httpx

ON_DEMAND_4090 = {"gpu_name": {"eq": "RTX 4090"}, "order": [["dph_total", "asc"]], "limit": 50}


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def public(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


def connect(port: int, key: asyncssh.SSHKey) -> Any:
    return asyncssh.connect(
        "127.0.0.1",
        port,
        username="root",
        client_keys=[key],
        known_hosts=None,
        agent_path=None,
    )


async def offer_ids(client: httpx.AsyncClient, query: dict[str, Any] | None = None) -> list[int]:
    response = await client.post("/api/v0/bundles/", json=query or ON_DEMAND_4090)
    response.raise_for_status()
    return [offer["id"] for offer in response.json()["offers"]]


async def rent(client: httpx.AsyncClient, offer_id: int | None = None, **body: Any) -> int:
    """Create an instance on `offer_id` (or the cheapest RTX 4090); returns its id."""
    if offer_id is None:
        offer_id = (await offer_ids(client))[0]
    response = await client.put(
        f"/api/v0/asks/{offer_id}/", json={"client_id": "me", "image": "pytorch/pytorch", **body}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["success"] is True
    return int(answer["new_contract"])


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
