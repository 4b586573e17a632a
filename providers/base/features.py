"""What a provider supports, answered from its `UNSUPPORTED` declaration (SkyPilot's
`_CLOUD_UNSUPPORTED_FEATURES`), and the capability protocol each feature stands for."""

from __future__ import annotations

from collections.abc import Mapping

from core.contracts.providers import ProviderFeature
from providers.base.capabilities import (
    AccountSshKeys,
    InstanceSshKeys,
    MachineCatalogue,
    OfferMarketplace,
    Rebootable,
    Stoppable,
)
from providers.base.errors import Unsupported
from providers.base.provider import Provider

# A supported feature here means its protocol is implemented. GPU_MACHINES and CPU_MACHINES
# have no methods of their own: they are declarations only.
CAPABILITIES: Mapping[ProviderFeature, type] = {
    ProviderFeature.OFFER_MARKETPLACE: OfferMarketplace,
    ProviderFeature.MACHINE_CATALOGUE: MachineCatalogue,
    ProviderFeature.STOP_START: Stoppable,
    ProviderFeature.REBOOT: Rebootable,
    ProviderFeature.INSTANCE_SSH_KEYS: InstanceSshKeys,
    ProviderFeature.ACCOUNT_SSH_KEYS: AccountSshKeys,
}


def unsupported_reason(provider: Provider, feature: ProviderFeature) -> str | None:
    """Why `provider` cannot do `feature`, or None when it can."""
    return provider.UNSUPPORTED.get(feature)


def supports(provider: Provider, feature: ProviderFeature) -> bool:
    return feature not in provider.UNSUPPORTED


def unsupported_map(provider: Provider) -> dict[str, str]:
    """`InstanceInfo.unsupported`: feature value -> reason, plain strings for the workflow."""
    return {feature.value: reason for feature, reason in sorted(provider.UNSUPPORTED.items())}


def unsupported(provider: Provider, feature: ProviderFeature) -> Unsupported:
    """The error for asking `provider` to do `feature`, with its reason."""
    reason = unsupported_reason(provider, feature)
    # Only a provider whose declaration disagrees with its methods gets here without one.
    return Unsupported(reason or f"{provider.name} cannot do {feature.value}", feature=feature)


def declaration_errors(provider_class: type[Provider]) -> list[str]:
    """Where a provider class's `UNSUPPORTED` and the protocols it implements disagree: a
    programming error either way, since callers trust both."""
    name = provider_class.__name__
    declared = provider_class.UNSUPPORTED
    errors = [
        f"{name}: UNSUPPORTED[{str(feature)!r}] must be a ProviderFeature with a reason"
        " a user can read"
        for feature, reason in declared.items()
        if not isinstance(feature, ProviderFeature) or not str(reason).strip()
    ]
    for feature, protocol in CAPABILITIES.items():
        implemented = issubclass(provider_class, protocol)
        if feature in declared and implemented:
            errors.append(
                f"{name} implements {protocol.__name__} but declares {feature} unsupported"
            )
        if feature not in declared and not implemented:
            errors.append(
                f"{name} supports {feature} but does not implement {protocol.__name__}"
                " (or add it to UNSUPPORTED with a reason)"
            )
    if {ProviderFeature.GPU_MACHINES, ProviderFeature.CPU_MACHINES} <= declared.keys():
        errors.append(f"{name} declares both GPU and CPU machines unsupported")
    return errors
