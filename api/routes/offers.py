"""`/api/v1/offers`: what a provider offers now (a marketplace's live offers, a catalogue's
machine types), filtered and sorted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import CurrentUser, ProvidersDep
from api.errors import invalid
from api.pagination import Pager
from api.schemas.common import AUTHENTICATED, INVALID, ErrorOut
from api.schemas.offers import OfferFilters, OfferOut
from api.services import offers as service
from core.contracts.bid import check_interruptible
from providers.base import Offer, OfferQuery

router = APIRouter(
    prefix="/api/v1/offers",
    tags=["offers"],
    responses={
        **AUTHENTICATED,
        502: {"model": ErrorOut, "description": "The provider failed"},
        409: {"model": ErrorOut, "description": "The provider has no offer marketplace"},
        **INVALID,
        503: {"model": ErrorOut, "description": "The provider is rate limiting or not set up"},
    },
)

# Pages reach this far into a ranking: a live market reshuffles long before anyone reads on.
MAX_RANK = 1000


@router.get("", response_model=list[OfferOut])
async def list_offers(
    filters: Annotated[OfferFilters, Query()],
    _user: CurrentUser,
    providers: ProvidersDep,
    request: Request,
    response: Response,
) -> list[Offer]:
    """The provider's offers matching the filters, best first by `sort`. A page is a position
    in that ranking, which the market changes between requests."""
    page = Pager(request, response, filters.limit, filters.cursor)
    wanted = min(page.offset + filters.limit + 1, MAX_RANK)
    try:
        check_interruptible(filters.provider, filters.interruptible)
    except ValueError as exc:
        raise invalid(("query", "interruptible"), str(exc)) from None
    search, kind = service.searching(providers, filters.provider)
    query = OfferQuery(
        kind=kind,
        gpu_name=filters.gpu,
        num_gpus=filters.num_gpus,
        max_price=filters.max_price,
        region=filters.region,
        min_reliability=filters.min_reliability,
        min_vram_gb=filters.min_vram_gb,
        min_disk_gb=filters.disk_gb,
        sort=filters.sort,
        limit=wanted,
        interruptible=filters.interruptible,
    )
    return page.window(await search(query))
