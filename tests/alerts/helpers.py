"""Owners, machines and a webhook receiver for alert tests."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.engine import Engine

from core.accounts import create_user
from core.db import session_scope
from core.models import Machine


def make_machine(engine: Engine, owner_id: str | None = None, status: str = "running") -> Machine:
    """A machine row (and, without `owner_id`, a new owner for it)."""
    with session_scope(engine) as session:
        if owner_id is None:
            owner_id = create_user(session, f"user-{uuid.uuid4().hex[:6]}").id
        machine = Machine(
            id=f"m{uuid.uuid4().hex[:10]}",
            owner_id=owner_id,
            gpu_name="RTX 4090",
            image="pytorch/pytorch:latest",
            disk_gb=20,
            status=status,
        )
        session.add(machine)
    return machine


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A real HTTP server on a free loopback port answering the statuses queued, then 200."""

    statuses: list[int]
    received: list[Received] = field(default_factory=list)
    url: str = ""


@contextmanager
def webhook_receiver(statuses: list[int]) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(list(statuses))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.received.append(Received(dict(self.headers.items()), body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/dumont"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
