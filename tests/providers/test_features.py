"""What providers declare they cannot do agrees with the capabilities they implement."""

from __future__ import annotations

from typing import ClassVar

import pytest

from core.contracts.machine import MachineKind
from core.contracts.providers import ProviderFeature
from providers.base import (
    CAPABILITIES,
    AccountSshKeys,
    InstanceSshKeys,
    OfferMarketplace,
    OfferQuery,
    Provider,
    Rebootable,
    Stoppable,
    Unsupported,
    declaration_errors,
    supports,
    unsupported,
    unsupported_map,
    unsupported_reason,
)
from providers.registry import PROVIDER_CLASSES
from providers.vast import VastProvider
from tests.fixtures.providers import CoreOnlyProvider, CoreWithOffersProvider


@pytest.mark.parametrize("provider_class", PROVIDER_CLASSES, ids=lambda c: c.__name__)
def test_every_provider_declares_what_it_implements(provider_class: type[Provider]) -> None:
    assert declaration_errors(provider_class) == []


@pytest.mark.parametrize("provider_class", [CoreOnlyProvider, CoreWithOffersProvider])
def test_the_test_doubles_declare_what_they_implement(provider_class: type[Provider]) -> None:
    assert declaration_errors(provider_class) == []


def test_every_feature_is_a_capability_or_a_machine_kind() -> None:
    """A new feature must say which protocol it stands for, or be a declaration only."""
    machine_kinds = {ProviderFeature.GPU_MACHINES, ProviderFeature.CPU_MACHINES}
    assert set(CAPABILITIES) | machine_kinds == set(ProviderFeature)
    assert not set(CAPABILITIES) & machine_kinds


def test_a_declaration_that_disagrees_with_the_methods_is_caught() -> None:
    class Claims(CoreOnlyProvider):
        """Claims it can stop (not in UNSUPPORTED) but cannot; can reboot but says it cannot."""

        UNSUPPORTED: ClassVar[dict[ProviderFeature, str]] = {
            f: r
            for f, r in CoreOnlyProvider.UNSUPPORTED.items()
            if f is not ProviderFeature.STOP_START
        }

        async def reboot_instance(self, instance_id: str) -> None:
            pass

    assert declaration_errors(Claims) == [
        "Claims supports stop_start but does not implement Stoppable"
        " (or add it to UNSUPPORTED with a reason)",
        "Claims implements Rebootable but declares reboot unsupported",
    ]

    class Nothing(CoreOnlyProvider):
        UNSUPPORTED: ClassVar[dict[ProviderFeature, str]] = {
            **CoreOnlyProvider.UNSUPPORTED,
            ProviderFeature.CPU_MACHINES: " ",
        }

    assert declaration_errors(Nothing) == [
        "Nothing: UNSUPPORTED['cpu_machines'] must be a ProviderFeature with a reason a user"
        " can read",
        "Nothing declares both GPU and CPU machines unsupported",
    ]


async def test_vast_has_every_capability_and_rents_gpus_only() -> None:
    vast = VastProvider("http://127.0.0.1:1/", "k")
    try:
        for protocol in (OfferMarketplace, Stoppable, Rebootable, InstanceSshKeys, AccountSshKeys):
            assert isinstance(vast, protocol)
        assert supports(vast, ProviderFeature.GPU_MACHINES)
        assert not supports(vast, ProviderFeature.CPU_MACHINES)
        assert unsupported_reason(vast, ProviderFeature.STOP_START) is None
        assert unsupported_reason(vast, ProviderFeature.CPU_MACHINES) == (
            "vast.ai rents GPU machines only"
        )
        assert unsupported_map(vast) == {
            "cpu_machines": "vast.ai rents GPU machines only",
            "machine_catalogue": "vast.ai sells live offers, not machine types",
        }
        with pytest.raises(Unsupported, match="GPU machines only"):
            await vast.search_offers(OfferQuery(kind=MachineKind.CPU))
    finally:
        await vast.aclose()


def test_the_unsupported_error_carries_the_reason() -> None:
    core = CoreOnlyProvider()
    assert not isinstance(core, Stoppable) and isinstance(core, Provider)
    error = unsupported(core, ProviderFeature.STOP_START)
    assert str(error) == error.reason == "core instances cannot be stopped, only destroyed"
    assert error.feature is ProviderFeature.STOP_START and not error.retryable
    assert unsupported_map(core)["offer_marketplace"] == "core sells machine types from a catalogue"
