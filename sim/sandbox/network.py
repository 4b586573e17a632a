"""A machine's own network namespace, with its declared ports published on host ports by pasta.

A machine that declares TCP ports gets a named namespace (`ip netns add dsim-...`) and one
pasta process that maps 127.0.0.1:HOSTPORT on the host to each container port inside it and
gives the namespace a route out (pasta's tap device). Both live from the machine's first boot
to its destroy, across stop/start, as a container keeps its port mapping. The machine's
processes join it with `nsenter --net`.

pasta's own `-T auto` (host loopback ports seen inside) is not used: the version in Debian
bookworm (0.0~git20230309) rescans in the wrong direction, so only ports bound when pasta
started would be forwarded, and `auto` takes no exclusions, so the host's 8000 (the Dumont API)
would take 8000 inside from the machine's own service. sim/sandbox/bridge.py does that job.
Its UDP forwarding carries no replies, so UDP ports are not published here (see sim/networks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Only namespaces with this prefix are ever created or cleaned up by a sim.
PREFIX = "dsim-"
NETNS_DIR = Path("/run/netns")
# Creators hold it shared from `ip netns add` until pasta runs; the leak sweep holds it
# exclusively, so it never deletes a namespace another sim is still setting up.
LOCK_FILE = Path("/run/dumont-sim-netns.lock")
# On each pasta process: the namespace it serves and the machine directory it belongs to.
ENV_NETNS = "DUMONT_SIM_NETNS"
ENV_DIR = "DUMONT_SIM_NET_DIR"
_TOOLS = ("ip", "pasta", "nsenter")
_STOP_WAIT = 2.0


class NetworkError(OSError):
    """The namespace or its pasta could not be set up."""


@dataclass(frozen=True)
class PortMap:
    host_port: int
    container_port: int


def new_name() -> str:
    """A name unique across the sims of one host; short (15 characters), like an ifname."""
    return PREFIX + secrets.token_hex(5)


def netns_path(name: str) -> str:
    return str(NETNS_DIR / name)


def enter(name: str, argv: list[str]) -> list[str]:
    """argv run inside the namespace `name`."""
    return ["nsenter", f"--net={netns_path(name)}", "--", *argv]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    # SO_REUSEADDR as pasta binds: a port with only TIME_WAIT connections left is usable.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pasta_argv(name: str, ports: Sequence[PortMap], pid_file: Path) -> list[str]:
    # One -t per port: pasta exits non-zero when one of them cannot bind, instead of
    # silently leaving it out.
    forwards = [arg for p in ports for arg in ("-t", f"127.0.0.1/{p.host_port}:{p.container_port}")]
    return [
        "pasta",
        "-q",
        "--runas",
        "0:0",
        "--config-net",
        *forwards,
        *("-T", "none", "-u", "none", "-U", "none"),
        *("--netns", name, "-P", str(pid_file)),
    ]


def _pasta_env(name: str, machine_dir: Path) -> dict[str, str]:
    # A clean environment: a sim that itself runs on a machine must not hand pasta that
    # machine's markers (its stop would kill this pasta).
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {"PATH": path, ENV_NETNS: name, ENV_DIR: str(machine_dir)}


@contextlib.contextmanager
def _locked(mode: int) -> Iterator[None]:
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _environ(pid: int | str) -> dict[bytes, bytes]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.partition(b"=")[::2] for item in raw.split(b"\0") if item)


def pasta_pid(name: str, pid_file: Path) -> int | None:
    """The running pasta of namespace `name` (checked by its marker, not just the pid)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if _alive(pid) and _environ(pid).get(ENV_NETNS.encode()) == name.encode():
        return pid
    return None


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


async def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    _, err = await proc.communicate()
    # pasta's -q still prints "Failed to send N bytes to syslog" where there is no syslog.
    lines = [line for line in err.decode(errors="replace").splitlines() if "syslog" not in line]
    return proc.returncode or 0, "; ".join(lines)


async def start(name: str, ports: Sequence[PortMap], pid_file: Path, machine_dir: Path) -> int:
    """Create the namespace when it is missing and run its pasta; returns pasta's pid."""
    loop = asyncio.get_running_loop()
    lock = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await loop.run_in_executor(None, fcntl.flock, lock, fcntl.LOCK_SH)
        if not exists(name):
            code, err = await _run(["ip", "netns", "add", name])
            if code != 0:
                raise NetworkError(f"ip netns add {name}: {err}")
        _unlink(pid_file)
        code, err = await _run(pasta_argv(name, ports, pid_file), _pasta_env(name, machine_dir))
        if code != 0:
            raise NetworkError(f"pasta for {name}: {err or f'exit status {code}'}")
    finally:
        os.close(lock)
    pid = pasta_pid(name, pid_file)
    if pid is None:
        raise NetworkError(f"pasta for {name} did not stay up")
    return pid


async def stop(name: str, pid_file: Path) -> None:
    """End the namespace's pasta (its host ports close) and delete the namespace."""
    pid = pasta_pid(name, pid_file)
    if pid is not None:
        await _kill(pid)
    _unlink(pid_file)
    if exists(name):
        code, err = await _run(["ip", "netns", "del", name])
        if code != 0 and exists(name):
            raise NetworkError(f"ip netns del {name}: {err}")


async def _kill(pid: int) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = loop.time() + _STOP_WAIT
    while loop.time() < deadline:
        if not _alive(pid):
            return
        await asyncio.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _kill_now(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + _STOP_WAIT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def delete_now(name: str) -> None:
    if exists(name):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)


def _held_namespaces() -> tuple[set[int], set[str]]:
    """The inodes of every network namespace some process is in, and the names of those a
    live pasta serves (pasta runs outside its namespace: until a machine process enters, only
    its marker says the namespace is in use)."""
    inodes: set[int] = set()
    names: set[str] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/proc/{entry}/ns/net").st_ino)
            if (name := _environ(entry).get(ENV_NETNS.encode())) is not None:
                names.add(name.decode())
    return inodes, names


def sweep_leaked() -> list[str]:
    """Delete this prefix's namespaces that nothing is in any more (their pasta and machine
    processes are gone: a sim killed with no restart). Returns the names deleted."""
    if not NETNS_DIR.is_dir():
        return []
    deleted = []
    with _locked(fcntl.LOCK_EX):
        held, served = _held_namespaces()
        for name in sorted(os.listdir(NETNS_DIR)):
            if not name.startswith(PREFIX) or name in served:
                continue
            try:
                inode = (NETNS_DIR / name).stat().st_ino
            except OSError:
                continue
            if inode not in held:
                delete_now(name)
                deleted.append(name)
    return deleted


def release_under(data_dir: Path) -> list[str]:
    """Kill every pasta of the machines kept under `data_dir` and delete their namespaces
    (test clean-up, after the sim itself is gone). Returns the namespace names."""
    prefix = str(data_dir.resolve()).encode() + b"/"
    names = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        env = _environ(entry)
        if env.get(ENV_DIR.encode(), b"").startswith(prefix) and ENV_NETNS.encode() in env:
            _kill_now(int(entry))
            names.append(env[ENV_NETNS.encode()].decode())
    for name in names:
        if name.startswith(PREFIX):
            delete_now(name)
    return names


def available() -> bool:
    """Whether machines can get their own namespace: root, `ip`, `pasta` and `nsenter`, and
    a probe namespace whose pasta actually starts (it needs /dev/net/tun)."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in _TOOLS):
        return False
    name = PREFIX + "p" + secrets.token_hex(4)
    with tempfile.TemporaryDirectory() as tmp:
        pid_file = Path(tmp) / "pasta.pid"
        try:
            with _locked(fcntl.LOCK_SH):
                subprocess.run(["ip", "netns", "add", name], capture_output=True, timeout=10)
                result = subprocess.run(
                    pasta_argv(name, [PortMap(free_port(), 1)], pid_file),
                    capture_output=True,
                    timeout=10,
                    env=_pasta_env(name, Path(tmp)),
                    check=False,
                )
            return result.returncode == 0 and pasta_pid(name, pid_file) is not None
        except (OSError, subprocess.SubprocessError):
            return False
        finally:
            pid = pasta_pid(name, pid_file)
            if pid is not None:
                _kill_now(pid)
            delete_now(name)
