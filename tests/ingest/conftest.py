"""An API with one running machine of alice's and its agent token, and a clock tests move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel
from temporalio.testing import WorkflowEnvironment

from api.ingest.service import Ingest
from core.db import session_scope
from core.models import Machine
from tests.api.conftest import Api, make_settings, running_api, temporal_address
from tests.ingest.helpers import add_machine, agent_token, report


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class AgentApi:
    api: Api
    machine: Machine
    token: str
    clock: Clock

    @property
    def ingest(self) -> Ingest:
        ingest: Ingest = self.api.app.state.ingest
        return ingest

    async def post(self, body: Any, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if isinstance(body, bytes):
            return await self.api.http.post("/api/agent/status", content=body, headers=headers)
        return await self.api.http.post("/api/agent/status", json=body, headers=headers, **kw)

    async def report(self, **fields: Any) -> httpx.Response:
        """Post a report taken now and write it to the database."""
        response = await self.post(report(self.machine.id, self.clock(), **fields))
        await self.ingest.writer.flush()
        return response

    def count(self, table: Any) -> int:
        if isinstance(table, type) and issubclass(table, SQLModel):
            table = table.__table__  # type: ignore[attr-defined]
        with session_scope(self.api.engine) as session:
            return int(session.execute(select(func.count()).select_from(table)).scalar_one())

    def machine_row(self) -> Machine:
        with session_scope(self.api.engine) as session:
            machine = session.get(Machine, self.machine.id)
            assert machine is not None
            return machine


@pytest.fixture
def clock() -> Iterator[Clock]:
    yield Clock()


async def _agent_api(api: Api, clock: Clock) -> AgentApi:
    api.app.state.ingest.clock = clock
    machine = add_machine(api.engine, api.alice_id, instance_id="12345", geolocation="Texas, US")
    return AgentApi(
        api=api, machine=machine, token=agent_token(api.engine, machine.id), clock=clock
    )


@pytest.fixture
async def agent_api(
    tmp_path: Path, dev_env: WorkflowEnvironment, clock: Clock
) -> AsyncIterator[AgentApi]:
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'api.db'}", temporal_address(dev_env)
    )
    async with running_api(settings) as api:
        yield await _agent_api(api, clock)


@pytest.fixture
async def agent_api_any_db(
    tmp_path: Path, db_url: str, dev_env: WorkflowEnvironment, clock: Clock
) -> AsyncIterator[AgentApi]:
    async with running_api(make_settings(tmp_path, db_url, temporal_address(dev_env))) as api:
        yield await _agent_api(api, clock)
