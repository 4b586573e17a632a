"""The core every provider implements. Anything more (offers, stop/start, reboot, SSH keys) is a
capability (`capabilities.py`), and what a provider cannot do is declared in `UNSUPPORTED`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from core.contracts.providers import ProviderFeature
from core.settings import Settings
from providers.base.models import CreateRequest, ProviderInstance


@dataclass(frozen=True)
class Unconfigured:
    """A provider the settings do not enable, and what to set to enable it."""

    name: str
    why: str  # "set VAST_API_KEY (or DUMONT_VAST_API_KEY)"


@runtime_checkable
class Provider(Protocol):
    """Every mutating call is idempotent: labels make creates findable, destroy of a gone
    instance succeeds."""

    name: str
    # What this provider cannot do, with a reason a user can read ("vast.ai rents GPU machines
    # only"). A feature left out is supported, and its capability protocol must be implemented
    # (tests/providers/test_features.py holds every provider class to it).
    UNSUPPORTED: ClassVar[dict[ProviderFeature, str]]

    @classmethod
    def from_settings(cls, settings: Settings) -> Provider | Unconfigured:
        """The provider the settings configure, or why they do not."""
        ...

    async def create_instance(self, request: CreateRequest) -> ProviderInstance:
        """Create under `request.label`, or return the live instance already carrying it: a
        create whose answer was lost and is tried again must not create a second one."""
        ...

    async def get_instance(self, instance_id: str) -> ProviderInstance | None:
        """None when the provider no longer has it (destroyed, or never ours)."""
        ...

    async def find_by_label(self, label_prefix: str) -> list[ProviderInstance]:
        """Every instance whose label starts with `label_prefix`, destroyed ones included when
        the provider still lists them (their status is GONE)."""
        ...

    async def find_by_exact_label(self, label: str) -> list[ProviderInstance]:
        """Every instance labelled exactly `label` (one provider-side filter, not a listing
        of the whole account), destroyed ones included when still listed."""
        ...

    async def destroy_instance(self, instance_id: str) -> None:
        """Destroy; an instance that is already gone counts as destroyed."""
        ...

    async def aclose(self) -> None: ...
