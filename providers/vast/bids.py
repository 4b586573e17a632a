"""Interruptible (bid) instances on vast.ai: which offers a bid can rent, what a create bids,
and how an instance stopped by an outbid reads.

vast.ai prices an interruptible offer at its minimum bid (`min_bid`), creates an instance
bid below it stopped (`success: false` with `new_contract`), and stops a running one when a
higher bid or an on-demand rental takes its GPUs: the status message then says why.
"""

from __future__ import annotations

import re
from typing import Any

from core.contracts.states import InstanceStatus
from providers.base import CreateRequest, InvalidRequest, OfferUnavailable

# The key of an offer's minimum bid in its `provider_data` (USD per hour, as a string).
MIN_BID = "min_bid"
# vast.ai says why an interruptible instance stopped only in its status message
# ("Instance was interrupted: its GPUs were rented by a higher priority contract").
_INTERRUPTED = re.compile(r"interrupt|outbid|preempt", re.IGNORECASE)


def min_bid(row: dict[str, Any]) -> float | None:
    value = row.get(MIN_BID)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def offer_data(row: dict[str, Any]) -> dict[str, str]:
    """An offer's `provider_data`: its minimum bid, for a create that bids no price itself."""
    floor = min_bid(row)
    return {} if floor is None else {MIN_BID: repr(floor)}


def bid_admits(row: dict[str, Any], bid_price: float | None) -> bool:
    """Whether an offer takes the bid (no bid: its own minimum, always)."""
    if bid_price is None:
        return True
    floor = min_bid(row)
    return floor is not None and floor <= bid_price


def create_price(request: CreateRequest) -> float | None:
    """The create body's `price` (its presence makes the instance interruptible); None for an
    on-demand one."""
    if not request.interruptible:
        return None
    if request.bid_price is not None:
        return request.bid_price
    floor = request.provider_data.get(MIN_BID)
    if floor is None:
        raise InvalidRequest(
            f"vast: an interruptible create on offer {request.offer_id} needs a bid: the offer"
            " came from a search that was not for interruptible offers"
        )
    return float(floor)


def interrupted(status: InstanceStatus, status_msg: str | None) -> bool:
    """Stopped by the host (outbid, preempted), not by a stop Dumont asked for."""
    return status is InstanceStatus.STOPPED and bool(_INTERRUPTED.search(status_msg or ""))


def refused_bid(
    offer_id: str, price: float | None, refusal: Exception, instance_id: str
) -> OfferUnavailable:
    """What an under-bid create raises once the stopped instance it made is destroyed."""
    bid = "no bid" if price is None else f"the bid of ${price:g}/h"
    return OfferUnavailable(
        f"vast: offer {offer_id} refused {bid} ({refusal}); the stopped instance {instance_id}"
        " it made was destroyed"
    )
