"""The configured providers, by name, so activities take one object and pick per machine spec."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, overload

from core.contracts.providers import ProviderFeature
from core.settings import Settings
from providers.base import (
    InvalidRequest,
    MarketplaceProvider,
    Provider,
    Unconfigured,
    supports,
    unsupported,
)
from providers.gcp import GcpProvider
from providers.vast import VastProvider

# Every provider Dumont knows; the settings decide which of them are configured.
PROVIDER_CLASSES: tuple[type[Provider], ...] = (VastProvider, GcpProvider)


def declared_unsupported(name: str, feature: ProviderFeature) -> str | None:
    """What provider `name` declares about `feature` (None: supported, or no such provider),
    whether or not it is configured here: a class declaration, no credentials needed."""
    for provider_class in PROVIDER_CLASSES:
        if provider_class.name == name:
            return provider_class.UNSUPPORTED.get(feature)
    return None


class UnknownProvider(InvalidRequest):
    """A provider name that is not configured here (typo, or credentials not set)."""


class UnconfiguredProvider(UnknownProvider):
    """A provider Dumont has, not set up on this server (its credentials are missing)."""


class ProviderRegistry:
    def __init__(
        self, providers: Mapping[str, Provider], *, unconfigured: Iterable[Unconfigured] = ()
    ) -> None:
        self._providers = dict(providers)
        # So `get` can say what to set instead of "unknown".
        self._unconfigured = {u.name: u.why for u in unconfigured}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, classes: Iterable[type[Provider]] = PROVIDER_CLASSES
    ) -> ProviderRegistry:
        providers: dict[str, Provider] = {}
        unconfigured: list[Unconfigured] = []
        for provider_class in classes:
            made = provider_class.from_settings(settings)
            if isinstance(made, Unconfigured):
                unconfigured.append(made)
            else:
                providers[made.name] = made
        return cls(providers, unconfigured=unconfigured)

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        if name in self._unconfigured:
            raise UnconfiguredProvider(
                f"provider {name!r} is not configured: {self._unconfigured[name]}"
            )
        known = ", ".join(self.names) or "none"
        raise UnknownProvider(f"unknown provider {name!r} (configured: {known})")

    @overload
    def with_feature(
        self, feature: Literal[ProviderFeature.OFFER_MARKETPLACE], name: str | None = None
    ) -> list[MarketplaceProvider]: ...

    @overload
    def with_feature(self, feature: ProviderFeature, name: str | None = None) -> list[Provider]: ...

    def with_feature(
        self, feature: ProviderFeature, name: str | None = None
    ) -> list[Provider] | list[MarketplaceProvider]:
        """The configured providers that support `feature`, by name. With `name`, that one
        provider, or `Unsupported` with its reason (`UnknownProvider` for a name not here)."""
        if name is not None:
            provider = self.get(name)
            if not supports(provider, feature):
                raise unsupported(provider, feature)
            return [provider]
        return [self._providers[n] for n in self.names if supports(self._providers[n], feature)]

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
