"""What the gateway answers for machines that are not serving, from their rows alone (no
workflow needed): a stopped or failed machine says why with 503 and no Retry-After (trying
again will not help), a destroyed one and one without an enabled endpoint are 404; and a
WebSocket session through the gateway is relayed and counts as an open request while open."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus

from core.db import session_scope
from core.models import Machine, ServerlessEndpoint, utcnow
from core.serverless.keys import hash_endpoint_key, key_prefix
from tests.gateway.stack import Stack

KEY = "dsk_rows-only"


def a_machine(
    stack: Stack, status: str, *, reason: str | None = None, address: str | None = None,
    enabled: bool = True,
) -> str:  # fmt: skip
    machine_id = f"m-{uuid.uuid4().hex[:12]}"
    with session_scope(stack.engine) as session:
        session.add(
            Machine(
                id=machine_id,
                owner_id=stack.owner_id,
                image="ubuntu:22.04",
                disk_gb=20,
                status=status,
                status_reason=reason,
                ports={"8000/tcp": address} if address else None,
            )
        )
        session.flush()
        session.add(
            ServerlessEndpoint(
                machine_id=machine_id,
                owner_id=stack.owner_id,
                enabled=enabled,
                port="8000/tcp",
                key_hash=hash_endpoint_key(KEY),
                key_prefix=key_prefix(KEY),
                enabled_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    return machine_id


@pytest.mark.parametrize(
    ("status", "reason", "enabled", "code", "detail"),
    [
        ("stopped", "stopped by its owner", True, 503, "machine is stopped: stopped by its owner"),
        ("error", "boot failed: no SSH", True, 503, "machine is error: boot failed: no SSH"),
        ("destroyed", None, True, 404, "machine is destroyed"),
        ("running", None, False, 404, "no serverless endpoint for this machine"),
    ],
)
async def test_a_machine_that_does_not_serve_says_why(
    stack: Stack, status: str, reason: str | None, enabled: bool, code: int, detail: str
) -> None:
    machine_id = a_machine(stack, status, reason=reason, address="127.0.0.1:9", enabled=enabled)
    async with httpx.AsyncClient(timeout=30, headers={"X-Dumont-Key": KEY}) as http:
        answer = await http.get(f"{stack.url}/serverless/{machine_id}/v1/models")
    assert (answer.status_code, answer.json()) == (code, {"detail": detail})
    assert "retry-after" not in answer.headers


async def test_a_websocket_session_is_relayed_and_counts_while_open(stack: Stack) -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(f"echo {message!s}" if isinstance(message, str) else message)

    async with serve(echo, "127.0.0.1", 0) as server:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        machine_id = a_machine(stack, "running", address=f"{host}:{port}")
        url = f"{stack.url.replace('http', 'ws')}/serverless/{machine_id}/ws"
        traffic = stack.gateway.traffic
        with pytest.raises(InvalidStatus) as refused:
            await connect(url)
        assert refused.value.response.status_code == 401
        async with connect(url, additional_headers={"X-Dumont-Key": KEY}) as ws:
            await ws.send("hello")
            assert await ws.recv() == "echo hello"
            assert traffic.open_requests(machine_id) == 1
    # Closed: no longer open once the gateway's relay has seen the close.
    for _ in range(1000):
        if traffic.open_requests(machine_id) == 0:
            break
        await asyncio.sleep(0.01)
    assert traffic.open_requests(machine_id) == 0
