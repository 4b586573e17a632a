"""Which provider a new machine runs on, and what a machine-type catalogue's choice (GCP's
machine type, zone and Spot) must be: checked at the API so a mistake is a 422 naming the
field, not a machine that fails to provision minutes later."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from providers.base import InvalidRequest
from providers.gcp.catalogue import MACHINE_TYPES, ZONES
from providers.gcp.wire import source_image

PROVIDERS = ("vast", "gcp")
CATALOGUE_PROVIDERS = frozenset({"gcp"})


class ProviderChoice(BaseModel):
    """The first fields of `MachineCreate`, so later fields' checks can read the provider."""

    provider: str = Field(
        default="vast",
        examples=["vast", "gcp"],
        description="`vast` (GPU machines, the default) or `gcp` (CPU VMs on Compute Engine)",
    )
    machine_type: str | None = Field(
        default=None,
        examples=["e2-medium"],
        description="gcp only: " + ", ".join(MACHINE_TYPES) + " (unset: the cheapest)",
    )
    zone: str | None = Field(
        default=None,
        examples=["us-central1-a"],
        description="gcp only: the zone (unset: the cheapest; a stockout moves to the next)",
    )
    spot: bool = Field(
        default=False, description="gcp only: a Spot VM (cheaper; Google may preempt it)"
    )

    @field_validator("provider")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r} (one of {', '.join(PROVIDERS)})")
        return value

    @field_validator("machine_type", "zone", "spot")
    @classmethod
    def _catalogue_choice(cls, value: object, info: ValidationInfo) -> object:
        provider = info.data.get("provider")  # absent when the provider was invalid
        if value in (None, False) or provider is None:
            return value
        if provider not in CATALOGUE_PROVIDERS:
            raise ValueError(f"only for provider gcp, not {provider}")
        if info.field_name == "machine_type" and value not in MACHINE_TYPES:
            raise ValueError(
                f"unknown GCP machine type {value!r} (one of {', '.join(MACHINE_TYPES)})"
            )
        if info.field_name == "zone" and value not in ZONES:
            raise ValueError(f"unknown GCP zone {value!r} (one of {', '.join(ZONES)})")
        return value


def on_gcp(info: ValidationInfo) -> bool:
    return info.data.get("provider") == "gcp"


def check_gcp_image(image: str) -> None:
    """A VM boots a disk image; ValueError says which ones."""
    try:
        source_image(image)
    except InvalidRequest as exc:
        raise ValueError(str(exc)) from None
