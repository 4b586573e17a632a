"""The configured providers, by name, so activities take one object and pick per machine spec."""

from __future__ import annotations

from collections.abc import Mapping

from core.settings import Settings
from providers.base import InvalidRequest, Provider
from providers.vast import VastProvider


class UnknownProvider(InvalidRequest):
    """A provider name that is not configured here (typo, or credentials not set)."""


class ProviderRegistry:
    def __init__(
        self, providers: Mapping[str, Provider], *, unconfigured: Mapping[str, str] | None = None
    ) -> None:
        self._providers = dict(providers)
        # name -> why it is missing, so `get` can say what to set instead of "unknown".
        self._unconfigured = dict(unconfigured or {})

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        providers: dict[str, Provider] = {}
        unconfigured: dict[str, str] = {}
        if settings.vast_api_key is not None:
            providers["vast"] = VastProvider(
                settings.vast_url, settings.vast_api_key.get_secret_value()
            )
        else:
            unconfigured["vast"] = "set VAST_API_KEY (or DUMONT_VAST_API_KEY)"
        return cls(providers, unconfigured=unconfigured)

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        if name in self._unconfigured:
            raise UnknownProvider(
                f"provider {name!r} is not configured: {self._unconfigured[name]}"
            )
        known = ", ".join(self.names) or "none"
        raise UnknownProvider(f"unknown provider {name!r} (configured: {known})")

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
