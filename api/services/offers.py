"""Which provider's offers a search asks: a marketplace's live offers, or a catalogue's
machine types at list prices."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from api.errors import invalid
from core.contracts.machine import MachineKind
from core.contracts.providers import ProviderFeature
from providers.base import MachineCatalogue, Offer, OfferMarketplace, OfferQuery, unsupported
from providers.registry import ProviderRegistry, UnconfiguredProvider, UnknownProvider

OfferSearch = Callable[[OfferQuery], Awaitable[list[Offer]]]


def offer_search(providers: ProviderRegistry, name: str) -> tuple[OfferSearch, MachineKind]:
    """How provider `name` is searched, and the kind of machine it offers. A provider with
    neither offers nor a catalogue is a 409 with its reason; a name Dumont has no provider of
    is the caller's mistake, a 422 naming `provider`; one it has but this server did not set
    up stays the server's (503)."""
    try:
        provider = providers.get(name)
    except UnconfiguredProvider:
        raise
    except UnknownProvider as exc:
        raise invalid(("query", "provider"), str(exc)) from None
    if isinstance(provider, OfferMarketplace):
        return provider.search_offers, MachineKind.GPU
    if isinstance(provider, MachineCatalogue):
        return provider.catalogue_offers, MachineKind.CPU
    raise unsupported(provider, ProviderFeature.OFFER_MARKETPLACE)
