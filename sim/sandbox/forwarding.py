"""Local port forwarding (`ssh -L`, `ssh -W`, asyncssh's `forward_local_port`) to the machine's
own loopback, as a locked-down sshd allows it: a `direct-tcpip` channel to 127.0.0.1, ::1 or
localhost port P reaches what listens on P inside the machine; any other destination is
refused as administratively prohibited.

The SSH server runs in the sim's process on the host, so "inside the machine" has to be made:
a machine with its own network namespace gets a socket created by a thread that joined that
namespace (a socket stays in the namespace it was made in, whichever thread connects it), then
connected and carried by the sim's event loop like any other. A machine on the host network
shares the host's loopback, so a plain socket is already inside it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable
from typing import cast

import asyncssh
from asyncssh.forward import SSHForwarder

from sim.sandbox import network
from sim.sandbox.bridge import in_netns
from sim.sandbox.layout import MachineLayout

# A connect on loopback answers at once; this only bounds a listener whose backlog is full.
_CONNECT_TIMEOUT = 10.0
_Address = tuple[socket.AddressFamily, str]


def loopback_addresses(host: str) -> list[_Address] | None:
    """Where a forward to `host` goes inside the machine, in the order tried; None when `host`
    is not the machine's own loopback."""
    if host.lower().rstrip(".") == "localhost":
        # As sshd resolving localhost: the IPv4 loopback first, then the IPv6 one.
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if not address.is_loopback:
        return None
    return [(socket.AF_INET6 if address.version == 6 else socket.AF_INET, str(address))]


def connection_requested(
    layout: MachineLayout, host: str, port: int
) -> Awaitable[asyncssh.SSHTCPSession[bytes]]:
    """What the server answers a `direct-tcpip` request with: a coroutine that connects inside
    the machine (asyncssh confirms the channel once it returns, or sends its ChannelOpenError).
    Raises ChannelOpenError at once for a destination other than the machine's loopback."""
    addresses = loopback_addresses(host)
    if addresses is None:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
            f"forwarding to {host} port {port} is not permitted: only the machine's own "
            "loopback (127.0.0.1, ::1, localhost)",
        )
    return _open(layout.netns, addresses, port)


async def _socket(netns: str | None, family: socket.AddressFamily) -> socket.socket:
    if netns is None:
        return socket.socket(family, socket.SOCK_STREAM)
    path = network.netns_path(netns)

    def make() -> socket.socket:
        return socket.socket(family, socket.SOCK_STREAM)

    # in_netns blocks on its own thread's join; keep that off the event loop.
    return await asyncio.to_thread(in_netns, path, make)


async def _open(
    netns: str | None, addresses: list[_Address], port: int
) -> asyncssh.SSHTCPSession[bytes]:
    loop = asyncio.get_running_loop()
    failures = []
    for family, address in addresses:
        try:
            sock = await _socket(netns, family)
        except OSError as exc:  # the namespace went away: the machine is going down
            failures.append(f"{address}: {exc.strerror or exc}")
            continue
        sock.setblocking(False)
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                await loop.sock_connect(sock, (address, port))
            # The same pairing asyncssh makes for a plain forward, so EOF, flow control and
            # close behave as they do there.
            _, peer = await loop.create_connection(SSHForwarder, sock=sock)
        except OSError as exc:  # refused, or TimeoutError
            sock.close()
            failures.append(f"{address}: {exc.strerror or 'timed out'}")
            continue
        except BaseException:  # cancelled: the SSH connection went away meanwhile
            sock.close()
            raise
        # asyncssh types its own forwarder as a plain protocol, not as a session.
        return cast(asyncssh.SSHTCPSession[bytes], SSHForwarder(peer))
    raise asyncssh.ChannelOpenError(
        asyncssh.OPEN_CONNECT_FAILED, f"connect to port {port} failed: {'; '.join(failures)}"
    )
