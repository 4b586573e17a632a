"""Which provider's offers a search asks: a marketplace's live offers, or a catalogue's
machine types at list prices."""

from __future__ import annotations

from api.errors import invalid
from core.contracts.machine import MachineKind
from core.contracts.providers import ProviderFeature
from providers.base import OfferSearch, unsupported
from providers.base import offer_search as provider_offer_search
from providers.registry import ProviderRegistry, UnconfiguredProvider, UnknownProvider


def searching(providers: ProviderRegistry, name: str) -> tuple[OfferSearch, MachineKind]:
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
    found = provider_offer_search(provider)
    if found is None:
        raise unsupported(provider, ProviderFeature.OFFER_MARKETPLACE)
    search, live = found
    # A marketplace rents GPUs (vast.ai); a catalogue, CPU VMs (GCP).
    return search, MachineKind.GPU if live else MachineKind.CPU
