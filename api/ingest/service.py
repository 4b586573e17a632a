"""What the API shares for heartbeats: the token cache, the writer and the clock, created in
the app's lifespan (`start_ingest`) and found at `app.state.ingest`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine

from api.ingest.signals import Signaller, SyncSignaller, TemporalSignaller
from api.ingest.tokens import AgentTokenCache
from api.ingest.writer import HeartbeatWriter
from api.temporal import TemporalConnector
from core.models import utcnow


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUMONT_INGEST_", extra="ignore")

    flush_ms: float = Field(default=50, gt=0, le=5000)
    # Make each heartbeat wait for its batch's commit instead of answering once queued.
    wait_for_commit: bool = False
    token_cache_seconds: float = Field(default=10, ge=0, le=3600)


class Ingest:
    def __init__(
        self,
        engine: Engine,
        signal: Signaller,
        settings: IngestSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        sync_signal: SyncSignaller | None = None,
    ) -> None:
        settings = settings or IngestSettings()
        self.clock = clock  # replaceable, so tests can move time
        self.tokens = AgentTokenCache(engine, ttl=settings.token_cache_seconds)
        self.writer = HeartbeatWriter(
            engine,
            signal,
            self.now,
            flush_seconds=settings.flush_ms / 1000,
            wait_for_commit=settings.wait_for_commit,
            sync_signal=sync_signal,
        )

    def now(self) -> datetime:
        return self.clock()


def start_ingest(engine: Engine, temporal: TemporalConnector) -> Ingest:
    signaller = TemporalSignaller(temporal)
    ingest = Ingest(engine, signaller, sync_signal=signaller.sync)
    ingest.writer.start()
    return ingest
