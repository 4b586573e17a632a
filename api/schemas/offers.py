"""`GET /api/v1/offers`: the filters and an offer as shown."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.pagination import CURSOR_HELP
from api.schemas.common import MAX_PRICE_PER_HOUR, MAX_VRAM_GB, ApiInput, normalise_region
from providers.base import SortKey


class OfferFilters(ApiInput):
    """Query string of `GET /api/v1/offers`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gpu: str | None = Field(default=None, min_length=1, max_length=100)
    num_gpus: int | None = Field(default=None, ge=1, le=8)
    max_price: float | None = Field(default=None, gt=0, le=MAX_PRICE_PER_HOUR)
    region: str | None = None
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    min_vram_gb: float | None = Field(default=None, ge=0, le=MAX_VRAM_GB)
    disk_gb: int | None = Field(default=None, ge=1, le=2048)
    sort: SortKey = "price"
    limit: int = Field(default=50, ge=1, le=500, description="Offers per page")
    cursor: str | None = Field(default=None, max_length=100, description=CURSOR_HELP)
    provider: str = Field(default="vast", min_length=1, max_length=32, examples=["vast"])
    interruptible: bool = Field(
        default=False,
        description="vast only: interruptible (bid) offers, priced at their minimum bid",
    )

    _region = field_validator("region")(normalise_region)


class OfferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    offer_id: str
    provider: str
    gpu_name: str
    num_gpus: int
    gpu_ram_gb: float
    price_per_hour: float
    reliability: float
    geolocation: str
    country: str
    disk_space_gb: float
    cpu_cores: float
    cpu_ram_gb: float
    inet_down_mbps: float
    inet_up_mbps: float
