"""Interruptible (bid) machines: what a bid may be, checked alike by the API and the CLI."""

from __future__ import annotations

# A sanity ceiling: vast.ai takes bids up to 32 USD/h per GPU, and nobody means 100.
MAX_BID_PER_HOUR = 100.0
# Providers that sell interruptible instances at a bid (GCP's counterpart is `spot`).
INTERRUPTIBLE_PROVIDERS = frozenset({"vast"})


def check_interruptible(provider: str, interruptible: bool) -> None:
    """ValueError saying why `interruptible` is not for this provider."""
    if interruptible and provider not in INTERRUPTIBLE_PROVIDERS:
        hint = " (GCP has `spot`)" if provider == "gcp" else ""
        raise ValueError(f"only for provider vast, not {provider}{hint}")


def check_bid_price(interruptible: bool, bid_price: float | None) -> None:
    """ValueError saying what is wrong with `bid_price` (None is fine: each offer's minimum)."""
    if bid_price is None:
        return
    if not interruptible:
        raise ValueError("a bid is only for an interruptible machine: set interruptible too")
    if not 0 < bid_price <= MAX_BID_PER_HOUR:  # also false for NaN
        raise ValueError(f"must be above 0 and at most {MAX_BID_PER_HOUR:g} USD per hour")
