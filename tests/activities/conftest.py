"""Provider activities wired to the real vast provider pointed at the local cloud."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from activities.provider import ProviderActivities
from core.ssh import SshIdentity, ensure_identity
from providers.registry import ProviderRegistry
from providers.vast import VastProvider
from tests.fixtures.sim import SimHandle, running_sim


@pytest.fixture(scope="package")
async def cloud(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimHandle]:
    """One local cloud for these tests (each uses its own machine ids); starting one per test
    would cost more than the tests."""
    async with running_sim(tmp_path_factory.mktemp("cloud") / "sim") as handle:
        yield handle


@pytest.fixture
def identity(tmp_path: Path) -> SshIdentity:
    return ensure_identity(tmp_path / "ssh" / "id_ed25519")


@pytest.fixture
async def registry(cloud: SimHandle) -> AsyncIterator[ProviderRegistry]:
    registry = ProviderRegistry({"vast": VastProvider(cloud.url, cloud.api_key)})
    try:
        yield registry
    finally:
        await registry.aclose()


@pytest.fixture
def provider_activities(registry: ProviderRegistry, identity: SshIdentity) -> ProviderActivities:
    return ProviderActivities(registry, identity, poll_seconds=0.1, ssh_timeout_seconds=5)
