"""What a provider may do beyond the core, one protocol per capability (dstack's `ComputeWith*`).

Callers check with `isinstance(provider, Stoppable)` before calling; a provider without the
capability declares the matching `ProviderFeature` in its `UNSUPPORTED` with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from providers.base.models import Offer, OfferQuery
from providers.base.provider import Provider


@runtime_checkable
class OfferMarketplace(Protocol):
    """Live offers to search and rent (vast.ai). A provider without one sells a catalogue of
    machine types instead."""

    async def search_offers(self, query: OfferQuery) -> list[Offer]: ...


@runtime_checkable
class MachineCatalogue(Protocol):
    """Machine types at list prices, in zones (GCP): offers that are never taken by someone
    else, though a zone may be out of capacity at create time."""

    async def catalogue_offers(self, query: OfferQuery) -> list[Offer]: ...


@runtime_checkable
class Stoppable(Protocol):
    """Stop keeping the disk, and start again on the same host."""

    async def stop_instance(self, instance_id: str) -> None: ...

    async def start_instance(self, instance_id: str) -> None: ...


@runtime_checkable
class Rebootable(Protocol):
    async def reboot_instance(self, instance_id: str) -> None: ...


@runtime_checkable
class InstanceSshKeys(Protocol):
    """Keys added to a running instance. Without it, keys go in at creation
    (`CreateRequest.ssh_keys`)."""

    async def attach_ssh_key(self, instance_id: str, public_key: str) -> None: ...


@runtime_checkable
class AccountSshKeys(Protocol):
    """A key registered once on the account, which the provider puts on every new instance."""

    async def ensure_account_ssh_key(self, public_key: str) -> None:
        """Add the key unless the account already has it."""
        ...


class MarketplaceProvider(Provider, OfferMarketplace, Protocol):
    """A provider with an offer marketplace: what `ProviderRegistry.with_feature` returns for
    `OFFER_MARKETPLACE`, so its callers can search without a cast."""


OfferSearch = Callable[[OfferQuery], Awaitable[list[Offer]]]


def offer_search(provider: object) -> tuple[OfferSearch, bool] | None:
    """How `provider`'s offers are searched, and whether they are live offers others may rent
    first (a marketplace) rather than a catalogue's; None when it has neither."""
    if isinstance(provider, OfferMarketplace):
        return provider.search_offers, True
    if isinstance(provider, MachineCatalogue):
        return provider.catalogue_offers, False
    return None
