"""`/api/v1/offers`: what the marketplace has now, filtered and sorted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, ProvidersDep
from api.schemas.common import AUTHENTICATED, ErrorOut
from api.schemas.offers import OfferFilters, OfferOut
from providers.base import Offer, OfferQuery

router = APIRouter(
    prefix="/api/v1/offers",
    tags=["offers"],
    responses={
        **AUTHENTICATED,
        502: {"model": ErrorOut, "description": "The provider failed"},
        503: {"model": ErrorOut, "description": "The provider is rate limiting or not set up"},
    },
)


@router.get("", response_model=list[OfferOut])
async def list_offers(
    filters: Annotated[OfferFilters, Query()], _user: CurrentUser, providers: ProvidersDep
) -> list[Offer]:
    query = OfferQuery(
        gpu_name=filters.gpu,
        num_gpus=filters.num_gpus,
        max_price=filters.max_price,
        region=filters.region,
        min_reliability=filters.min_reliability,
        min_vram_gb=filters.min_vram_gb,
        min_disk_gb=filters.disk_gb,
        sort=filters.sort,
        limit=filters.limit,
    )
    return await providers.get("vast").search_offers(query)
