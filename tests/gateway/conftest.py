from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.gateway.stack import Stack, running_stack


@pytest.fixture(scope="session")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, dev_env: WorkflowEnvironment
) -> AsyncIterator[Stack]:
    """One stack for every gateway test: a test resets what it changed in the sim."""
    async with running_stack(tmp_path_factory.mktemp("gateway"), dev_env.client) as stack:
        yield stack
