"""An API under test: the real app (lifespan included) behind httpx's ASGI transport, its own
database, two users with tokens, and Temporal wherever the test points it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from core.accounts import create_user, issue_token
from core.db import session_scope
from core.settings import Settings
from tests.fixtures.s3 import S3Endpoint
from tests.fixtures.sim import SimHandle
from tests.fixtures.worker import running_worker


@dataclass
class Api:
    app: FastAPI
    http: httpx.AsyncClient
    settings: Settings
    alice: str  # tokens
    bob: str
    alice_id: str
    bob_id: str

    @property
    def engine(self) -> Engine:
        engine: Engine = self.app.state.engine
        return engine

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = self.auth(token if token is not None else self.alice)
        return await self.http.request(method, path, headers=headers, **kw)

    def count(self, table: type[SQLModel]) -> int:
        with session_scope(self.engine) as session:
            return session.exec(select(func.count()).select_from(table)).one()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temporal_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def make_settings(tmp_path: Path, db_url: str, temporal: str, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        temporal_address=temporal,
        # A queue of its own, so no other test's worker picks up these machines.
        task_queue=f"api-test-{uuid.uuid4().hex[:8]}",
        vast_api_key=extra.pop("vast_api_key", None),
        **extra,
    )


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        with session_scope(app.state.engine) as session:
            alice, bob = create_user(session, "alice"), create_user(session, "bob")
            tokens = issue_token(session, alice.id), issue_token(session, bob.id)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield Api(
                app=app,
                http=http,
                settings=settings,
                alice=tokens[0],
                bob=tokens[1],
                alice_id=alice.id,
                bob_id=bob.id,
            )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


@pytest.fixture
async def api(tmp_path: Path, sqlite_url: str, dev_env: WorkflowEnvironment) -> AsyncIterator[Api]:
    """Real Temporal, no worker: machines can be created but never act."""
    async with running_api(make_settings(tmp_path, sqlite_url, temporal_address(dev_env))) as a:
        yield a


@pytest.fixture
async def api_any_db(
    tmp_path: Path, db_url: str, dev_env: WorkflowEnvironment
) -> AsyncIterator[Api]:
    """Like `api`, once on SQLite and once on PostgreSQL."""
    async with running_api(make_settings(tmp_path, db_url, temporal_address(dev_env))) as a:
        yield a


@pytest.fixture
async def api_without_temporal(tmp_path: Path, db_url: str) -> AsyncIterator[Api]:
    """Temporal is down: the API points at a port nothing listens on."""
    settings = make_settings(tmp_path, db_url, f"127.0.0.1:{closed_port()}")
    async with running_api(settings) as a:
        yield a


@pytest.fixture
async def live(
    tmp_path: Path, sqlite_url: str, dev_env: WorkflowEnvironment, sim: SimHandle, s3: S3Endpoint
) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        temporal_address(dev_env),
        vast_url=sim.url,
        vast_api_key=sim.api_key,
        boot_timeout_seconds=120,
        provider_poll_seconds=0.5,
        heartbeat_timeout_seconds=5,
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        s3_bucket=s3.bucket,
        s3_region="us-east-1",
    )
    async with (
        running_api(settings) as api,
        running_worker(
            dev_env.client,
            settings,
            api.engine,
            max_heartbeat_throttle_interval=timedelta(milliseconds=500),
            default_heartbeat_throttle_interval=timedelta(milliseconds=500),
        ),
    ):
        yield api
