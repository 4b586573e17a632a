"""Which provider's marketplace a search asks."""

from __future__ import annotations

from api.errors import invalid
from core.contracts.providers import ProviderFeature
from providers.base import MarketplaceProvider
from providers.registry import ProviderRegistry, UnconfiguredProvider, UnknownProvider


def marketplace(providers: ProviderRegistry, name: str) -> MarketplaceProvider:
    """Provider `name`, which must have an offer marketplace (else a 409 with its reason). A
    name Dumont has no provider of is the caller's mistake, a 422 naming `provider`; one it
    has but this server did not set up stays the server's (503)."""
    try:
        (found,) = providers.with_feature(ProviderFeature.OFFER_MARKETPLACE, name)
    except UnconfiguredProvider:
        raise
    except UnknownProvider as exc:
        raise invalid(("query", "provider"), str(exc)) from None
    return found
