"""Declared ports as vast.ai maps them: each machine in its own network namespace, each
container port published on its own host port, the host's loopback services still reachable
from inside."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import httpx
import pytest

from sim.sandbox import network
from sim.sandbox.listening import _from_proc, listening_ports
from tests.fixtures.sim import SimHandle, running_sim
from tests.sim.helpers import alive, connect, new_key, public, rent

T = TypeVar("T")
# Serves the file `id` (the instance id) from the workspace on each port given.
SERVE = (
    'cd "$DUMONT_WORKSPACE" && echo "$CONTAINER_ID" > id && '
    "for p in {ports}; do python3 -m http.server $p --bind 0.0.0.0 >/dev/null 2>&1 & done; wait"
)
# Run inside a machine: fetch a URL (optionally POSTing N bytes) and print the answer.
FETCH = (
    "import sys, urllib.request as u\n"
    "body = b'u' * int(sys.argv[2]) if len(sys.argv) > 2 else None\n"
    "print(u.urlopen(sys.argv[1], data=body, timeout=5).read().decode(), end='')\n"
)


async def until(probe: Callable[[], Awaitable[T | None]], what: str, within: float = 15.0) -> T:
    """Poll `probe` until it returns something other than None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"never: {what}")
        await asyncio.sleep(0.05)


async def http_text(port: int) -> str | None:
    """GET /id on 127.0.0.1:port, None while nothing answers yet."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"http://127.0.0.1:{port}/id")
    except httpx.HTTPError:
        return None
    return response.text.strip() if response.status_code == 200 else None


@asynccontextmanager
async def host_server(answer: bytes) -> AsyncIterator[int]:
    """An HTTP server on the host's 127.0.0.1: GET answers `answer`, POST the body's sha256."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        body = hashlib.sha256(await reader.readexactly(length)).hexdigest().encode()
        reply = body if head.startswith(b"POST") else answer
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


async def require_netns(sim: SimHandle) -> None:
    """Fails loudly where the sim should have namespaces (root) but has none."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    status = await sim.admin.status()
    assert status["network"] == "netns", "root, but no netns: is pasta (package passt) there?"


async def create(sim: SimHandle, key: asyncssh.SSHKey, **body: Any) -> int:
    async with sim.client() as client:
        await client.post("/api/v0/ssh/", json={"ssh_key": public(key)})
        return await rent(client, **body)


async def boot(sim: SimHandle, key: asyncssh.SSHKey, **body: Any) -> dict[str, Any]:
    return await sim.wait_for_status(await create(sim, key, **body), "running")


def published(instance: dict[str, Any], port: int) -> int:
    return int(instance["ports"][f"{port}/tcp"][0]["HostPort"])


async def inside(conn: asyncssh.SSHClientConnection, url: str, upload: int = 0) -> str:
    args = [url, str(upload)] if upload else [url]
    result = await conn.run(f"python3 -c {_quote(FETCH)} {' '.join(args)}", check=True)
    return str(result.stdout)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def netns_names() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_two_machines_serve_8000_each_on_its_own_host_port(sim: SimHandle) -> None:
    await require_netns(sim)
    key = new_key()
    async with host_server(b"host") as taken:
        # A declares a port the host already listens on; B only 8000; C a UDP port.
        both = {"-p 8000:8000": "1", f"-p {taken}:{taken}": "1"}
        ids = [
            await create(sim, key, env=both, onstart=SERVE.format(ports=f"8000 {taken}")),
            await create(sim, key, env={"-p 8000:8000": "1"}, onstart=SERVE.format(ports="8000")),
            await create(sim, key, env={"-p 9000:9000/udp": "1"}),
        ]
        a, b, c = await asyncio.gather(*(sim.wait_for_status(i, "running") for i in ids))
        ports = {published(a, 8000), published(b, 8000), published(a, taken)}
        assert len(ports) == 3 and not ports & {8000, taken}
        assert await until(lambda: http_text(published(a, 8000)), "A serves") == str(a["id"])
        assert await until(lambda: http_text(published(b, 8000)), "B serves") == str(b["id"])
        assert await until(lambda: http_text(published(a, taken)), "A's") == str(a["id"])
        assert await http_text(taken) == "host"
        async with connect(a["ssh_port"], key) as conn:
            # Inside, its own service has the port, not the host's listener.
            assert (await inside(conn, f"http://localhost:{taken}/id")).strip() == str(a["id"])
        assert a["public_ipaddr"] == "127.0.0.1"
    machines = {m["id"]: m for m in await sim.admin.instances()}
    assert machines[a["id"]]["netns"] != machines[b["id"]]["netns"]
    # UDP is not forwarded by the packaged pasta: that machine keeps the host's network.
    assert machines[c["id"]]["netns"] is None
    assert c["ports"]["9000/udp"][0]["HostPort"] == "9000"


async def test_the_mapping_survives_stop_and_start_and_the_machine_sees_it(
    sim: SimHandle,
) -> None:
    await require_netns(sim)
    key = new_key()
    first = await boot(sim, key, env={"-p 8000:8000": "1"}, onstart=SERVE.format(ports="8000"))
    host_port = published(first, 8000)
    async with connect(first["ssh_port"], key) as conn:
        told = await conn.run('printf %s "$VAST_TCP_PORT_8000"', check=True)
        await until(lambda: http_text(host_port), "it serves")
        own = await inside(conn, "http://localhost:8000/id")
    assert told.stdout == str(host_port)
    assert own.strip() == str(first["id"])
    pasta = (await sim.admin.instance(first["id"]))["pasta_pid"]

    async with sim.client() as client:
        await client.put(f"/api/v0/instances/{first['id']}/", json={"state": "stopped"})
        stopped = await sim.wait_for_status(first["id"], "stopped")
        assert "ports" not in stopped
        assert (await sim.admin.instance(first["id"]))["pasta_pid"] == pasta
        await client.put(f"/api/v0/instances/{first['id']}/", json={"state": "running"})
    again = await sim.wait_for_status(first["id"], "running")
    assert published(again, 8000) == host_port
    assert await until(lambda: http_text(host_port), "it serves again") == str(first["id"])


async def test_the_machine_reaches_the_hosts_loopback_services(sim: SimHandle) -> None:
    await require_netns(sim)
    key = new_key()
    async with host_server(b"before") as before:
        machine = await boot(sim, key, env={"-p 8000:8000": "1"})
        async with connect(machine["ssh_port"], key) as conn:
            assert await inside(conn, f"http://127.0.0.1:{before}/") == "before"
            # The sim's own API, as the agent posts to the Dumont API.
            offers = await inside(conn, f"{sim.url}/api/v0/bundles/")
            assert '"offers"' in offers
            upload = 3_000_000
            digest = hashlib.sha256(b"u" * upload).hexdigest()
            assert await inside(conn, f"http://127.0.0.1:{before}/", upload) == digest
            # A host service that starts after the machine is reached within a rescan.
            async with host_server(b"after") as after:

                async def answered() -> str | None:
                    result = await conn.run(
                        f"python3 -c {_quote(FETCH)} http://127.0.0.1:{after}/", check=False
                    )
                    return str(result.stdout) if result.exit_status == 0 else None

                assert await until(answered, "the later service is reached", 10) == "after"


async def test_every_process_of_the_machine_is_in_its_namespace(sim: SimHandle) -> None:
    await require_netns(sim)
    key = new_key()
    onstart = 'readlink /proc/self/ns/net > "$DUMONT_WORKSPACE/onstart.ns"'
    machine = await boot(sim, key, env={"-p 8000:8000": "1"}, onstart=onstart)
    name = (await sim.admin.instance(machine["id"]))["netns"]
    expected = f"net:[{os.stat(network.netns_path(name)).st_ino}]"
    async with connect(machine["ssh_port"], key) as conn:
        exec_ns = await conn.run("readlink /proc/self/ns/net", check=True)
        shell = await conn.create_process(term_type="xterm")
        shell.stdin.write("readlink /proc/self/ns/net; exit\n")
        shell_output = await shell.stdout.read()

        async def onstart_ns() -> str | None:
            result = await conn.run('cat "$DUMONT_WORKSPACE/onstart.ns"', check=False)
            return str(result.stdout).strip() if result.exit_status == 0 else None

        assert await until(onstart_ns, "onstart wrote its namespace") == expected
    assert str(exec_ns.stdout).strip() == expected
    assert expected in shell_output


async def test_destroy_ends_pasta_and_deletes_the_namespace(sim: SimHandle) -> None:
    await require_netns(sim)
    machine = await boot(sim, new_key(), env={"-p 8000:8000": "1"})
    shown = await sim.admin.instance(machine["id"])
    name, pasta = shown["netns"], shown["pasta_pid"]
    assert name.startswith(network.PREFIX) and name in netns_names() and alive(pasta)
    async with sim.client() as client:
        await client.request("DELETE", f"/api/v0/instances/{machine['id']}/", json={})
    assert not alive(pasta)
    assert name not in netns_names()
    assert network.port_is_free(published(machine, 8000))


async def test_a_restarted_sim_adopts_pasta_and_a_graceful_stop_ends_it(tmp_path: Path) -> None:
    async with running_sim(tmp_path / "sim") as sim:
        await require_netns(sim)
        key = new_key()
        first = await boot(sim, key, env={"-p 8000:8000": "1"}, onstart=SERVE.format(ports="8000"))
        host_port = published(first, 8000)
        await until(lambda: http_text(host_port), "it serves")
        shown = await sim.admin.instance(first["id"])

        await sim.restart()  # kill -9: the machine and its pasta outlive the sim
        back = await sim.wait_for_status(first["id"], "running")
        assert published(back, 8000) == host_port
        assert (await sim.admin.instance(first["id"]))["pasta_pid"] == shown["pasta_pid"]
        assert await http_text(host_port) == str(first["id"])
        async with connect(back["ssh_port"], key) as conn:
            assert (await inside(conn, f"{sim.url}/api/v0/bundles/")).startswith("{")

        await sim.terminate()
        assert not alive(shown["pasta_pid"])
        assert shown["netns"] not in netns_names()

        await sim.start()  # after a graceful stop: made again, on the same host port
        again = await sim.wait_for_status(first["id"], "running")
        assert published(again, 8000) == host_port
        assert await until(lambda: http_text(host_port), "it serves again") == str(first["id"])


async def test_a_leaked_namespace_is_deleted_when_a_sim_starts(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    leaked = network.PREFIX + secrets.token_hex(5)
    await asyncio.to_thread(subprocess.run, ["ip", "netns", "add", leaked], check=True)
    try:
        async with running_sim(tmp_path / "sim") as sim:
            await require_netns(sim)
            assert leaked not in netns_names()
    finally:
        network.delete_now(leaked)


async def test_a_namespace_only_its_pasta_serves_survives_another_sims_start(
    tmp_path: Path,
) -> None:
    """Until a machine process enters its namespace, only its pasta (which runs outside it)
    uses it: a second sim starting meanwhile (another test run, `dumont dev`) keeps it."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    served = network.new_name()
    machine_dir = tmp_path / "machine"
    machine_dir.mkdir()
    pid_file = machine_dir / "pasta.pid"
    await network.start(served, [network.PortMap(free_port(), 8000)], pid_file, machine_dir)
    try:
        async with running_sim(tmp_path / "sim") as sim:
            await require_netns(sim)
            assert served in netns_names()
    finally:
        await network.stop(served, pid_file)


async def test_with_the_hosts_network_ports_keep_their_numbers(tmp_path: Path) -> None:
    key = new_key()
    async with running_sim(tmp_path / "sim", extra_args=["--network", "host"]) as sim:
        assert (await sim.admin.status())["network"] == "host"
        machine = await boot(sim, key, env={"-p 8000:8000": "1"})
        assert machine["ports"]["8000/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8000"}]
        async with connect(machine["ssh_port"], key) as conn:
            told = await conn.run('printf %s "$VAST_TCP_PORT_8000"', check=True)
        assert told.stdout == "8000"
        assert (await sim.admin.instance(machine["id"]))["netns"] is None


def test_the_listening_ports_are_those_127_0_0_1_reaches() -> None:
    def listener(family: int, address: str, port: int = 0, listen: bool = True) -> socket.socket:
        sock = socket.socket(family)
        sock.bind((address, port))
        if listen:
            sock.listen()
        return sock

    reached = [
        listener(socket.AF_INET, "127.0.0.1"),
        listener(socket.AF_INET, "0.0.0.0"),
        listener(socket.AF_INET6, "::"),
    ]
    # Bound, not listening: nothing else listens on its port via 127.0.0.1 but 127.0.0.2.
    bound = listener(socket.AF_INET, "127.0.0.1", listen=False)
    missed = [bound, listener(socket.AF_INET, "127.0.0.2", bound.getsockname()[1])]
    try:
        ports = [{int(s.getsockname()[1]) for s in group} for group in (reached, missed)]
        netlink, proc = listening_ports(), _from_proc()
    finally:
        for sock in reached + missed:
            sock.close()
    for found in (netlink, proc):
        assert ports[0] <= found and not ports[1] & found
