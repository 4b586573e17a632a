"""A gateway process asked to stop (SIGTERM, as a deploy or `docker stop` does) while it holds
requests answers them 503 with Retry-After at once, saying it restarts, instead of leaving
them hanging until the server's graceful timeout; a gateway started again takes the next
requests. Both for `dumont gateway` and for the API's process, which mounts the gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from core.contracts.states import MachineState
from tests.cli.conftest import free_port
from tests.gateway.stack import WAIT_SECONDS, Stack

S = MachineState
pytestmark = pytest.mark.slow

COMMANDS = {
    "dumont gateway": [sys.executable, "-m", "dumont", "gateway", "--port", "{port}"],
    "the API": [
        sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", "{port}",
    ],
}  # fmt: skip


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:  # its output, for a failure's post-mortem
        return subprocess.Popen(argv, env=env, stdout=sink, stderr=sink)


@asynccontextmanager
async def process(stack: Stack, kind: str, port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
    """The gateway (or the API) in a process of its own, on the stack's database and Temporal,
    until it answers."""
    settings = stack.settings
    env = {
        **os.environ,
        "DUMONT_DATA_DIR": str(settings.data_dir / f"proc-{port}"),
        "DUMONT_DATABASE_URL": settings.resolved_database_url,
        "DUMONT_TEMPORAL_ADDRESS": settings.temporal_address,
        "DUMONT_TASK_QUEUE": settings.task_queue,
        "DUMONT_GATEWAY_REPORT_SECONDS": "1",
        "DUMONT_API_PORT": str(port),
    }
    argv = [part.format(port=port) for part in COMMANDS[kind]]
    child = _spawn(argv, env, settings.data_dir / f"{kind.replace(' ', '-')}-{port}.log")
    try:
        async with asyncio.timeout(WAIT_SECONDS), httpx.AsyncClient(timeout=5) as http:
            while True:
                assert child.poll() is None, f"{kind} exited with {child.returncode}"
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


@pytest.mark.parametrize("kind", list(COMMANDS))
async def test_held_requests_get_a_clear_503_when_the_gateway_stops(
    stack: Stack, kind: str
) -> None:
    machine = await stack.serverless_machine()
    await stack.pause(machine)
    port = free_port()
    url = f"http://127.0.0.1:{port}/serverless/{machine.id}/infer"
    await stack.sim.admin.set_boot_delay(15)  # a resume long enough to stop the gateway in
    try:
        async with (
            process(stack, kind, port) as gateway,
            httpx.AsyncClient(timeout=120, headers=machine.auth()) as http,
        ):
            held = asyncio.create_task(http.get(url))
            await stack.until_state(machine.id, S.RESUMING)  # its waker asked for the resume
            gateway.send_signal(signal.SIGTERM)
            answer = await held
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"].startswith("gateway restarting")
            assert int(answer.headers["retry-after"]) > 0
            await asyncio.to_thread(gateway.wait, WAIT_SECONDS)
        async with (
            process(stack, kind, port),
            httpx.AsyncClient(timeout=120, headers=machine.auth()) as http,
        ):
            later = await http.get(url)
            assert later.status_code == 200, later.text
            assert later.json()["path"] == "/infer"
    finally:
        await stack.sim.admin.set_boot_delay(0.3)
    event = await stack.until_event(machine.id, "cold_start_failed")
    assert "the gateway stopped while requests were held" in (event.reason or "")
    await stack.destroy(machine)
