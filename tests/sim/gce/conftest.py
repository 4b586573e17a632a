"""One sim for each test module: tests keep apart by using a project of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.sim import SimHandle, running_sim


@pytest.fixture(scope="module")
async def gce_sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    data_dir: Path = tmp_path_factory.mktemp("gce") / "sim"
    async with running_sim(data_dir, boot_delay=0.2) as handle:
        yield handle
