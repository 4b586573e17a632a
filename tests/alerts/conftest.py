"""The API for alert tests: no Temporal needed (nothing here talks to a workflow)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, closed_port, make_settings, running_api


@pytest.fixture
async def alerts_api(tmp_path: Path) -> AsyncIterator[Api]:
    """The real app on SQLite, with users alice and bob."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    async with running_api(make_settings(tmp_path, url, f"127.0.0.1:{closed_port()}")) as api:
        yield api


@pytest.fixture
async def alerts_api_any_db(tmp_path: Path, db_url: str) -> AsyncIterator[Api]:
    """Like `alerts_api`, once on SQLite and once on PostgreSQL."""
    async with running_api(make_settings(tmp_path, db_url, f"127.0.0.1:{closed_port()}")) as api:
        yield api
