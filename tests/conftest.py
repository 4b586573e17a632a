"""Shared fixtures: real Temporal binaries, SQLite and PostgreSQL databases."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from core import search_attributes
from core.db import make_engine, migrate

pytest_plugins = ["tests.fixtures.sim", "tests.fixtures.s3"]

BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = os.environ.get(
    "DUMONT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def binary(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: pip install -e '.[test]' installs it")
    return path


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (updates, continue-as-new, search attributes).

    The suggested continue-as-new point is lowered so tests reach it in seconds.
    """
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        search_attributes=list(search_attributes.ALL),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=120",
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server of the test's own, for timers and deadlines (it starts in a
    fraction of a second). A shared one is not safe: a workflow an earlier test left running,
    its worker gone, holds tasks no one takes, and those stop time skipping for every later
    test ("Timeout expired" from each sleep)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server")
    )
    # The machine workflow upserts these; a server that does not know them fails the task.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in search_attributes.ALL
            },
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


def postgres_database() -> Iterator[str]:
    admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"dumont_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own."""
    yield from postgres_database()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dumont.db'}"
    else:
        yield from postgres_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database, for tests that are not about the database backend."""
    engine = make_engine(f"sqlite:///{tmp_path / 'dumont.db'}")
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


class _IllegalTransitions(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "is not in the table" in message:
            self.seen.append(message)


@pytest.fixture(autouse=True)
def no_illegal_transitions() -> Iterator[None]:
    """A move the transition table lacks is logged by the workflow (it never stops a machine
    over its own bookkeeping); in a test it is a failure."""
    handler = _IllegalTransitions()
    logger = logging.getLogger("temporalio.workflow")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert handler.seen == [], handler.seen
