"""Bodies stream both ways: a chunked answer reaches the client as the service writes it (its
first part arrives while the service still holds the rest back), and an upload reaches the
service as the client sends it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from tests.gateway.stack import Stack


async def test_answers_and_uploads_stream_through(stack: Stack) -> None:
    machine = await stack.serverless_machine()
    async with httpx.AsyncClient(timeout=60, headers=machine.auth()) as http:
        async with http.stream("GET", f"{machine.url}/gated") as answer:
            chunks = answer.aiter_raw()
            assert await anext(chunks) == b"first\n"  # buffered, it would wait for the rest
            assert (await http.get(f"{machine.url}/open-gate")).status_code == 200
            assert b"".join([c async for c in chunks]) == b"rest\n"

        async def upload() -> AsyncIterator[bytes]:
            yield b"x" * 1000
            # Only once the service has the first part does the client send the second.
            while True:
                if (await http.get(f"{machine.url}/received")).text == "1000":
                    break
                await asyncio.sleep(0.05)
            yield b"y" * 24

        echoed = await http.post(f"{machine.url}/upload", content=upload())
        assert echoed.json()["body"] == "x" * 1000 + "y" * 24
    await stack.destroy(machine)
