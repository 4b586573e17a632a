"""The whole product on a real port, for a client that blocks (the fuzzer): the API under
uvicorn on PostgreSQL, the worker, and the sim marketplace, all on an event loop of their own
in a background thread, so the caller's thread may make blocking HTTP calls."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from temporalio.client import Client

from api.app import create_app
from core.accounts import create_user, issue_token
from core.db import make_engine, migrate, session_scope
from core.models import Machine
from core.settings import Settings
from tests.api.conftest import make_settings
from tests.fixtures.sim import running_sim
from tests.fixtures.worker import running_worker

START_TIMEOUT = 120.0


@dataclass
class Stack:
    url: str
    token: str
    owner_id: str
    machine_id: str  # a machine of the owner's, for routes that act on one
    settings: Settings


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _seed(settings: Settings) -> tuple[str, str, str]:
    """The fuzzed owner, its token, and one stopped machine row of its own (no workflow: an
    action on it reaches Temporal, which answers that there is no such machine)."""
    engine = make_engine(settings.resolved_database_url)
    try:
        migrate(engine)
        with session_scope(engine) as session:
            user = create_user(session, "fuzzer")
            token = issue_token(session, user.id)
            machine = Machine(
                id="m-f0220000a11e",
                owner_id=user.id,
                gpu_name="RTX 4090",
                image="pytorch/pytorch",
                disk_gb=20,
                status="stopped",
            )
            session.add(machine)
            return user.id, token, machine.id
    finally:
        engine.dispose()


async def _serve(
    settings: Settings, sock: socket.socket, ready: threading.Event, stop: asyncio.Event
) -> None:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()  # startup failed: raise why
            await asyncio.sleep(0.02)
        client = await Client.connect(settings.temporal_address)
        async with running_worker(client, settings, app.state.engine):
            ready.set()
            await stop.wait()
    finally:
        server.should_exit = True
        await serving


@contextmanager
def running_stack(data_dir: Path, db_url: str, temporal: str, **extra: Any) -> Iterator[Stack]:
    """Until the block ends: the API at `Stack.url`, its worker, and the sim behind both."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    failure: list[BaseException] = []
    holder: dict[str, Settings] = {}
    sock = _listening_socket()

    async def main() -> None:
        async with running_sim(data_dir / "sim") as sim:
            settings = make_settings(
                data_dir, db_url, temporal, vast_url=sim.url, vast_api_key=sim.api_key, **extra
            )
            holder["settings"] = settings
            await _serve(settings, sock, ready, stop)

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the caller's thread
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="fuzz-stack", daemon=True)
    thread.start()
    started = False
    try:
        if not ready.wait(START_TIMEOUT) or failure:
            raise RuntimeError("the stack did not start") from (failure[0] if failure else None)
        started = True
        settings = holder["settings"]
        owner_id, token, machine_id = _seed(settings)
        host, port = sock.getsockname()
        yield Stack(f"http://{host}:{port}", token, owner_id, machine_id, settings)
    finally:
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        sock.close()
    if started and failure:  # it failed while stopping
        raise failure[0]
