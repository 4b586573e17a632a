"""Snapshot tests: a real S3 endpoint (rclone), a migrated SQLite database, and the engine as a
real subprocess (or over real SSH on a sim machine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from core.db import session_scope
from core.models import User
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.store import ObjectStore
from tests.fixtures.s3 import S3Endpoint
from tests.snapshots.helpers import Harness

OWNERS = ("alice", "bob")


@pytest.fixture
def store(s3: S3Endpoint) -> ObjectStore:
    return s3.store()


@pytest.fixture
def db(sqlite_engine: Engine) -> Iterator[Engine]:
    with session_scope(sqlite_engine) as session:
        for owner in OWNERS:
            session.add(User(id=owner, name=owner))
    yield sqlite_engine


@pytest.fixture
def harness(db: Engine, store: ObjectStore, tmp_path: Path) -> Harness:
    return Harness(db, store, SnapshotPolicy(pack_mib=4), tmp_path / "engine-cache")
