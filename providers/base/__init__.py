"""What every provider implements (a small core), what some can do besides (capabilities), what
each declares it cannot do (features), and the types and errors they share. A new provider
starts from contributing/PROVIDERS.md."""

from providers.base.capabilities import (
    AccountSshKeys,
    InstanceSshKeys,
    MachineCatalogue,
    MarketplaceProvider,
    OfferMarketplace,
    OfferSearch,
    Rebootable,
    Stoppable,
    offer_search,
)
from providers.base.errors import (
    AuthError,
    InstanceNotFound,
    InvalidRequest,
    OfferUnavailable,
    ProviderError,
    RateLimited,
    Unsupported,
)
from providers.base.features import (
    CAPABILITIES,
    declaration_errors,
    supports,
    unsupported,
    unsupported_map,
    unsupported_reason,
)
from providers.base.models import CreateRequest, Offer, OfferQuery, ProviderInstance, SortKey
from providers.base.provider import Provider, Unconfigured

__all__ = [
    "CAPABILITIES",
    "AccountSshKeys",
    "AuthError",
    "CreateRequest",
    "InstanceNotFound",
    "InstanceSshKeys",
    "MachineCatalogue",
    "InvalidRequest",
    "MarketplaceProvider",
    "Offer",
    "OfferMarketplace",
    "OfferQuery",
    "OfferSearch",
    "OfferUnavailable",
    "Provider",
    "ProviderError",
    "ProviderInstance",
    "RateLimited",
    "Rebootable",
    "SortKey",
    "Stoppable",
    "Unconfigured",
    "Unsupported",
    "declaration_errors",
    "offer_search",
    "supports",
    "unsupported",
    "unsupported_map",
    "unsupported_reason",
]
