"""The provider registry built from settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from core.settings import Settings
from providers.base import Provider
from providers.registry import ProviderRegistry, UnknownProvider
from providers.vast import VastProvider


@pytest.fixture(autouse=True)
def no_vast_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("VAST_API_KEY", "DUMONT_VAST_API_KEY", "VAST_URL", "DUMONT_VAST_URL"):
        monkeypatch.delenv(name, raising=False)


async def test_vast_is_registered_when_a_key_is_set():
    registry = ProviderRegistry.from_settings(
        Settings(vast_api_key=SecretStr("k"), vast_url="http://127.0.0.1:1/")
    )
    vast = registry.get("vast")
    assert isinstance(vast, VastProvider) and isinstance(vast, Provider)
    assert registry.names == ["vast"]
    with pytest.raises(UnknownProvider, match=r"unknown provider 'gcp' \(configured: vast\)"):
        registry.get("gcp")
    await registry.aclose()


async def test_a_missing_key_says_what_to_set():
    registry = ProviderRegistry.from_settings(Settings())
    with pytest.raises(UnknownProvider, match="not configured: set VAST_API_KEY"):
        registry.get("vast")
    await registry.aclose()
