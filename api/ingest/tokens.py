"""Agent token → machine id, cached in memory: a heartbeat must not cost a token query.

A revoked token keeps working in THIS process for at most `ttl` seconds (the control plane
revokes tokens in another process, so there is nothing to invalidate here)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.accounts import hash_token
from core.agent_tokens import machine_for_agent_token

DEFAULT_TTL_SECONDS = 10.0
MAX_ENTRIES = 100_000


class AgentTokenCache:
    def __init__(
        self,
        engine: Engine,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.ttl = ttl
        self.clock = clock
        # Keyed by the token's hash: the plaintext is never kept.
        self._entries: dict[str, tuple[str, float]] = {}

    def _lookup(self, token: str) -> str | None:
        with Session(self._engine) as session:
            return machine_for_agent_token(session, token)

    async def machine_for(self, token: str) -> str | None:
        key = hash_token(token)
        entry = self._entries.get(key)
        now = self.clock()
        if entry is not None and entry[1] > now:
            return entry[0]
        machine_id = await run_in_threadpool(self._lookup, token)
        if machine_id is None:
            self._entries.pop(key, None)
            return None
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (machine_id, now + self.ttl)
        return machine_id
