"""One shared Temporal client for the API, connected at startup or, if Temporal was down then,
on first use; a failed connect is reported per request instead of stopping the API."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client

CONNECT_TIMEOUT = timedelta(seconds=5)


class TemporalUnavailable(Exception):
    def __init__(self, address: str) -> None:
        super().__init__(f"Temporal is unreachable at {address}")
        self.address = address


class TemporalConnector:
    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def client(self) -> Client:
        """The shared client; raises TemporalUnavailable while Temporal cannot be reached."""
        if self._client is not None:
            return self._client
        async with self._lock:  # one connect attempt at a time, not one per waiting request
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        Client.connect(
                            self.address,
                            namespace=self.namespace,
                            connect_timeout=CONNECT_TIMEOUT,
                        ),
                        timeout=CONNECT_TIMEOUT.total_seconds() + 1,
                    )
                except (RuntimeError, OSError, TimeoutError) as exc:
                    raise TemporalUnavailable(self.address) from exc
            return self._client
