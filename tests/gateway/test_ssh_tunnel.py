"""`via_ssh`: the gateway reaches a service bound only to a machine's loopback over Dumont's
own SSH connection, through a real sim machine (its own network namespace where the host has
them). The machine's SSH address sits behind a TCP proxy the test can cut, as a network does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from api.gateway.ssh_tunnel import SshTunnelError, SshTunnels
from core.ssh import ensure_identity
from sim.sandbox.network import free_port
from tests.fixtures.sim import SimHandle
from tests.fixtures.tcp_proxy import TcpProxy
from tests.sim.helpers import rent
from tests.sim.test_ports import until

# The machine serves its id on 127.0.0.1:PORT only; its one declared port is another.
SERVE = (
    'cd "$DUMONT_WORKSPACE" && echo "$CONTAINER_ID" > id && '
    "exec python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1"
)


async def _get_id(address: tuple[str, int]) -> str | None:
    """GET /id through the address; None when the connection fails."""
    host, port = address
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://{host}:{port}/id")
    except httpx.TransportError:
        return None
    return response.text.strip() if response.status_code == 200 else None


async def test_a_loopback_only_service_answers_through_the_tunnel_across_drops_and_moves(
    sim: SimHandle, tmp_path: Path
) -> None:
    identity = ensure_identity(tmp_path / "dumont" / "id_ed25519")
    port = free_port()
    async with sim.client() as client:
        await client.post("/api/v0/ssh/", json={"ssh_key": identity.public_key})
        instance_id = await rent(client, env={"-p 8000:8000": "1"}, onstart=SERVE.format(port=port))
    machine = await sim.wait_for_status(instance_id, "running")
    own_id = str(instance_id)
    first, second = TcpProxy("127.0.0.1", machine["ssh_port"]), None
    tunnels = SshTunnels(identity)
    try:
        ssh_port = await first.start()
        # The gateway's first requests to a machine arrive together: they share one tunnel.
        addresses = await asyncio.gather(
            *(tunnels.address("m1", "127.0.0.1", ssh_port, port, user="root") for _ in range(8))
        )
        address = addresses[0]
        assert set(addresses) == {address} and address[0] == "127.0.0.1"
        # The service starts with the machine: until it listens, forwarded connections close.
        assert await until(lambda: _get_id(address), "the service answers") == own_id
        # Later calls reuse the same forward, over the same connection.
        assert await tunnels.address("m1", "127.0.0.1", ssh_port, port, user="root") == address

        # The SSH connection is cut under the tunnel: requests through it fail, the machine
        # cannot be reached while the network is down, and once it is back the next
        # address() works again.
        first.cut()
        assert await _get_id(address) is None
        with pytest.raises(SshTunnelError):
            await tunnels.address("m1", "127.0.0.1", ssh_port, port, user="root")
        first.restore()
        again = await tunnels.address("m1", "127.0.0.1", ssh_port, port, user="root")
        assert await _get_id(again) == own_id

        # A resume on a new host: another SSH address for the same machine id. The tunnel
        # moves there; the old path can go away without touching it.
        second = TcpProxy("127.0.0.1", machine["ssh_port"])
        moved = await tunnels.address("m1", "127.0.0.1", await second.start(), port, user="root")
        first.cut()
        assert await _get_id(moved) == own_id

        await tunnels.drop("m1")
        assert await _get_id(moved) is None
    finally:
        await tunnels.aclose()
        await first.stop()
        if second is not None:
            await second.stop()
