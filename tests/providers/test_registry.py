"""The provider registry: built from settings, and asked which providers can do what."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from core.contracts.providers import ProviderFeature
from core.settings import Settings
from providers.base import Provider, Unconfigured, Unsupported
from providers.gcp import GcpProvider
from providers.registry import PROVIDER_CLASSES, ProviderRegistry, UnknownProvider
from providers.vast import VastProvider
from tests.fixtures.providers import CoreOnlyProvider, CoreWithOffersProvider


@pytest.fixture(autouse=True)
def no_vast_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("VAST_API_KEY", "DUMONT_VAST_API_KEY", "VAST_URL", "DUMONT_VAST_URL"):
        monkeypatch.delenv(name, raising=False)


def vast_settings() -> Settings:
    return Settings(vast_api_key=SecretStr("k"), vast_url="http://127.0.0.1:1/")


@pytest.fixture
async def mixed() -> AsyncIterator[ProviderRegistry]:
    """vast (never called: nothing here does I/O) beside providers with fewer capabilities."""
    registry = ProviderRegistry(
        {
            "vast": VastProvider("http://127.0.0.1:1/", "k"),
            "core": CoreOnlyProvider(),
            "core-offers": CoreWithOffersProvider(),
        }
    )
    yield registry
    await registry.aclose()


async def test_vast_is_registered_when_a_key_is_set():
    registry = ProviderRegistry.from_settings(vast_settings())
    vast = registry.get("vast")
    assert isinstance(vast, VastProvider) and isinstance(vast, Provider)
    assert registry.names == ["vast"]
    with pytest.raises(UnknownProvider, match=r"unknown provider 'aws' \(configured: vast\)"):
        registry.get("aws")
    await registry.aclose()


async def test_a_missing_key_says_what_to_set():
    assert VastProvider.from_settings(Settings()) == Unconfigured(
        "vast", "set VAST_API_KEY (or DUMONT_VAST_API_KEY)"
    )
    registry = ProviderRegistry.from_settings(Settings())
    assert registry.names == []
    with pytest.raises(UnknownProvider, match="not configured: set VAST_API_KEY"):
        registry.get("vast")
    with pytest.raises(UnknownProvider, match=r"unknown provider 'aws' \(configured: none\)"):
        registry.get("aws")
    with pytest.raises(UnknownProvider, match="not configured: set DUMONT_GCP_PROJECT"):
        registry.get("gcp")
    await registry.aclose()


async def test_gcp_is_registered_with_a_project_and_credentials():
    settings = Settings(
        gcp_project="p1",
        gcp_credentials="anonymous",
        gcp_endpoint="http://127.0.0.1:1",
        installation_id="i0123abcd",
    )
    registry = ProviderRegistry.from_settings(settings)
    assert registry.names == ["gcp"]
    gcp = registry.get("gcp")
    assert isinstance(gcp, GcpProvider) and isinstance(gcp, Provider)
    await registry.aclose()


async def test_every_provider_class_is_built_from_the_same_settings():
    assert VastProvider in PROVIDER_CLASSES
    registry = ProviderRegistry.from_settings(
        vast_settings(), classes=(*PROVIDER_CLASSES, CoreOnlyProvider)
    )
    assert registry.names == ["vast"]
    with pytest.raises(UnknownProvider, match="provider 'core' is not configured: set CORE_TOKEN"):
        registry.get("core")
    await registry.aclose()


async def test_with_feature_lists_the_providers_that_support_it(mixed: ProviderRegistry):
    def names(feature: ProviderFeature) -> list[str]:
        return [p.name for p in mixed.with_feature(feature)]

    assert names(ProviderFeature.OFFER_MARKETPLACE) == ["core-offers", "vast"]
    assert names(ProviderFeature.STOP_START) == ["vast"]
    assert names(ProviderFeature.CPU_MACHINES) == ["core", "core-offers"]
    assert names(ProviderFeature.GPU_MACHINES) == ["vast"]


async def test_a_named_provider_that_lacks_the_feature_says_why(mixed: ProviderRegistry):
    [vast] = mixed.with_feature(ProviderFeature.OFFER_MARKETPLACE, "vast")
    assert vast is mixed.get("vast")
    with pytest.raises(Unsupported, match="^vast.ai rents GPU machines only$") as raised:
        mixed.with_feature(ProviderFeature.CPU_MACHINES, "vast")
    assert raised.value.feature is ProviderFeature.CPU_MACHINES
    assert not raised.value.retryable
    with pytest.raises(Unsupported, match="catalogue"):
        mixed.with_feature(ProviderFeature.OFFER_MARKETPLACE, "core")


async def test_with_feature_on_an_unknown_name_says_what_is_configured(mixed: ProviderRegistry):
    with pytest.raises(UnknownProvider, match=r"configured: core, core-offers, vast"):
        mixed.with_feature(ProviderFeature.OFFER_MARKETPLACE, "gcp")
