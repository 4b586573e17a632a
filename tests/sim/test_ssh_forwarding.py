"""Local port forwarding through a machine's SSH server, as OpenSSH's sshd allows it: to the
machine's own loopback (what listens there inside the machine, published or not), never to
another address."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest

from sim.sandbox.network import free_port
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import connect, new_key, public, rent
from tests.sim.test_ports import require_netns, until

# The machine serves its own id on 127.0.0.1:PORT (and, where given, on [::1]:PORT6), on
# nothing else: no declared port maps to either.
SERVE = (
    'cd "$DUMONT_WORKSPACE" && echo "$CONTAINER_ID" > id && '
    "(python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 &) && "
    "exec python3 -m http.server {port6} --bind ::1 >/dev/null 2>&1"
)
REQUEST = b"GET /id HTTP/1.0\r\nHost: machine\r\n\r\n"


async def _machine(
    sim: SimHandle, key: asyncssh.SSHKey, ports: tuple[int, int], **env: str
) -> dict[str, Any]:
    async with sim.client() as client:
        await client.post("/api/v0/ssh/", json={"ssh_key": public(key)})
        onstart = SERVE.format(port=ports[0], port6=ports[1])
        instance_id = await rent(client, env=env, onstart=onstart)
    return await sim.wait_for_status(instance_id, "running")


async def _fetch_over(conn: asyncssh.SSHClientConnection, host: str, port: int) -> str:
    """GET /id through a `direct-tcpip` channel to host:port; returns the body."""
    reader, writer = await conn.open_connection(host, port)
    writer.write(REQUEST)
    writer.write_eof()
    answer = await reader.read()
    writer.close()
    return answer.decode().split("\r\n\r\n", 1)[1].strip()


async def _serving(conn: asyncssh.SSHClientConnection, host: str, port: int) -> str | None:
    try:
        return await _fetch_over(conn, host, port)
    except asyncssh.ChannelOpenError as exc:
        assert exc.code == asyncssh.OPEN_CONNECT_FAILED, exc  # not up yet, never prohibited
        return None


def _host_refuses(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/id", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def _openssh(identity: Path, port: int, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    options = [
        *("-i", str(identity), "-p", str(port)),
        *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=INFO"),
        *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
    ]
    done = subprocess.run(
        ["ssh", *options, *args, "root@127.0.0.1"],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def _identity(tmp_path: Path, key: asyncssh.SSHKey) -> Path:
    identity = tmp_path / "id_ed25519"
    key.write_private_key(str(identity))
    identity.chmod(0o600)
    return identity


async def _assert_forwards_inside(
    machine: dict[str, Any], key: asyncssh.SSHKey, identity: Path, ports: tuple[int, int]
) -> None:
    port, port6 = ports
    own_id = str(machine["id"])
    ssh_port = int(machine["ssh_port"])
    async with connect(ssh_port, key) as conn:
        assert await until(lambda: _serving(conn, "127.0.0.1", port), "it serves") == own_id
        await until(lambda: _serving(conn, "::1", port6), "it serves on ::1")
        assert await _fetch_over(conn, "localhost", port) == own_id
        assert await _fetch_over(conn, "::1", port6) == own_id

        # What asyncssh's forward_local_port gives a program on this side: a local port.
        async with conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", port) as listener:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(f"http://127.0.0.1:{listener.get_port()}/id")
        assert response.text.strip() == own_id

        # Nothing is listening on that port inside: the channel says so, as sshd's does.
        with pytest.raises(asyncssh.ChannelOpenError) as closed:
            await conn.open_connection("127.0.0.1", free_port())
        assert closed.value.code == asyncssh.OPEN_CONNECT_FAILED

        # Anywhere but the machine's loopback is refused before any connect: 0.0.0.0 would
        # be the host's own loopback, a name could be anything.
        for elsewhere in ("0.0.0.0", "gateway.invalid"):
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_connection(elsewhere, port)
            assert refused.value.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED

    # The real OpenSSH client: `ssh -W` carries stdin and stdout to the machine's port...
    code, out, err = await asyncio.to_thread(
        _openssh, identity, ssh_port, "-W", f"127.0.0.1:{port}", stdin=REQUEST
    )
    assert code == 0, err
    assert out.split("\r\n\r\n", 1)[1].strip() == own_id
    # ... `ssh -L` opens a local port onto it ...
    local = free_port()
    forward = await asyncio.create_subprocess_exec(
        "ssh",
        *("-i", str(identity), "-p", str(ssh_port), "-N"),
        *("-L", f"127.0.0.1:{local}:localhost:{port}"),
        *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=INFO"),
        *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
        *("-o", "ExitOnForwardFailure=yes"),
        "root@127.0.0.1",
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert await until(lambda: _http_id(local), "ssh -L forwards") == own_id
    finally:
        forward.terminate()
        await forward.wait()
    # ... and a forward elsewhere is refused with sshd's words.
    code, _, err = await asyncio.to_thread(
        _openssh, identity, ssh_port, "-W", f"0.0.0.0:{port}", stdin=REQUEST
    )
    assert code != 0 and "administratively prohibited" in err, err


async def _http_id(port: int) -> str | None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{port}/id")).text.strip()
    except httpx.TransportError:
        return None


async def test_ssh_forwards_into_a_machines_own_network_namespace(
    sim: SimHandle, tmp_path: Path
) -> None:
    await require_netns(sim)
    key = new_key()
    ports = free_port(), free_port()
    machine = await _machine(sim, key, ports, **{"-p 8000:8000": "1"})
    assert (await sim.admin.instance(machine["id"]))["netns"] is not None
    await _assert_forwards_inside(machine, key, _identity(tmp_path, key), ports)
    # The service is the machine's alone: the host's loopback has nothing on that port.
    assert await asyncio.to_thread(_host_refuses, ports[0])


async def test_ssh_forwards_to_a_host_network_machines_loopback(
    sim: SimHandle, tmp_path: Path
) -> None:
    key = new_key()
    ports = free_port(), free_port()
    machine = await _machine(sim, key, ports)
    assert (await sim.admin.instance(machine["id"]))["netns"] is None
    await _assert_forwards_inside(machine, key, _identity(tmp_path, key), ports)
