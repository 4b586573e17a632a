"""Error mapping and retry behaviour for answers the local marketplace does not produce
(HTTP-date Retry-After, the search quota, auth errors dressed as 404, odd envelopes).

httpx.MockTransport stands in for vast here only to script those exact answers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from providers.base import (
    AuthError,
    CreateRequest,
    InvalidRequest,
    OfferQuery,
    OfferUnavailable,
    ProviderError,
    RateLimited,
)
from providers.retry import RetryPolicy, parse_retry_after
from providers.vast import VastProvider

KEY = "secret-key-0123456789"
FAST = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.002)


def provider(handler, retry: RetryPolicy = FAST) -> VastProvider:
    return VastProvider(
        "https://vast.test", KEY, retry=retry, transport=httpx.MockTransport(handler)
    )


def scripted(*responses: httpx.Response):
    """A handler answering with `responses` in turn, recording each request."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    return handler, seen


def offers_ok() -> httpx.Response:
    return httpx.Response(200, json={"offers": []})


async def test_429s_are_retried_then_the_call_succeeds():
    handler, seen = scripted(
        httpx.Response(429, text="API requests too frequent"),
        httpx.Response(429, json={"detail": "API requests too frequent endpoint threshold=4.5"}),
        offers_ok(),
    )
    vast = provider(handler)
    assert await vast.search_offers(OfferQuery()) == []
    assert len(seen) == 3
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    await vast.aclose()


async def test_a_429_storm_beyond_the_budget_is_rate_limited_with_the_servers_hint():
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "0"}, text="API requests too frequent")
    )
    vast = provider(handler)
    with pytest.raises(RateLimited) as caught:
        await vast.start_instance("5")
    assert caught.value.retry_after == 0.0
    assert len(seen) == FAST.max_retries + 1
    await vast.aclose()


async def test_a_retry_after_longer_than_a_minute_is_not_waited_for():
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "3600"}, text="slow"))
    vast = provider(handler)
    with pytest.raises(RateLimited) as caught:
        await vast.stop_instance("5")
    assert caught.value.retry_after == 3600.0
    assert len(seen) == 1
    await vast.aclose()


def test_retry_after_as_an_http_date():
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    later = format_datetime(moment + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=moment.timestamp()) == 30.0


async def test_the_daily_search_quota_is_not_retried():
    handler, seen = scripted(
        httpx.Response(
            429,
            headers={"X-RateLimit-Reset": "4102444800"},
            json={"error": "search_quota_exceeded", "msg": "daily search quota exceeded"},
        )
    )
    vast = provider(handler)
    with pytest.raises(RateLimited, match="search_quota_exceeded") as caught:
        await vast.search_offers(OfferQuery())
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert len(seen) == 1
    await vast.aclose()


async def test_an_auth_error_body_wins_over_a_404_status():
    handler, _ = scripted(
        httpx.Response(
            404, json={"success": False, "error": "auth_error", "msg": "Invalid user key"}
        )
    )
    vast = provider(handler)
    with pytest.raises(AuthError) as caught:
        await vast.get_instance("5")
    assert KEY not in str(caught.value)
    await vast.aclose()


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(401, json={"error": "auth_error", "msg": "Invalid user key"}), AuthError),
        (
            httpx.Response(
                404,
                json={
                    "success": False,
                    "error": "invalid_args",
                    "msg": "error 404/3603: no_such_ask Instance type by id 9 is not available.",
                },
            ),
            OfferUnavailable,
        ),
        (
            httpx.Response(
                410, json={"success": False, "error": "no_such_ask", "msg": "no longer available"}
            ),
            OfferUnavailable,
        ),
        (
            httpx.Response(
                400, json={"success": False, "error": "invalid_args", "msg": "bad disk"}
            ),
            InvalidRequest,
        ),
        (
            httpx.Response(
                403, json={"success": False, "error": "invalid_args", "msg": "not yours"}
            ),
            InvalidRequest,
        ),
    ],
)
async def test_create_errors_are_typed(response, error):
    handler, _ = scripted(httpx.Response(200, json={"instances": [], "next_token": None}), response)
    vast = provider(handler)
    with pytest.raises(error) as caught:
        await vast.create_instance(CreateRequest("9", "img", 10, "dumont-m-1"))
    assert "create instance on offer 9" in str(caught.value)
    assert not caught.value.retryable
    await vast.aclose()


async def test_a_deprecation_notice_is_not_an_empty_fleet():
    handler, _ = scripted(
        httpx.Response(
            200, json={"success": True, "instances_found": 0, "msg": "use something else"}
        )
    )
    vast = provider(handler)
    with pytest.raises(ProviderError, match="unexpected response"):
        await vast.find_by_label("dumont-")
    await vast.aclose()


async def test_a_repeating_page_token_fails_instead_of_looping():
    handler, seen = scripted(
        httpx.Response(200, json={"instances": [{"id": 1, "label": "a"}], "next_token": "t1"})
    )
    vast = provider(handler)
    with pytest.raises(ProviderError, match="paging"):
        await vast.find_by_label("a")
    assert seen[1].url.params["after_token"] == "t1"
    await vast.aclose()


async def test_destroying_a_gone_instance_succeeds():
    handler, seen = scripted(
        httpx.Response(404, json={"success": False, "error": "no_such_instance", "msg": "gone"})
    )
    vast = provider(handler)
    await vast.destroy_instance("5")
    assert seen[0].method == "DELETE" and json.loads(seen[0].content) == {}
    await vast.aclose()


async def test_a_connection_refused_is_retried_then_reported_without_the_key():
    attempts = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("connection refused", request=request)

    vast = provider(refuse)
    with pytest.raises(ProviderError, match="get instance 5 failed: connection refused") as caught:
        await vast.get_instance("5")
    assert attempts == FAST.max_retries + 1
    assert caught.value.retryable and KEY not in str(caught.value)
    await vast.aclose()


async def test_account_key_is_added_only_when_missing():
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample dumont@host"
    listing = httpx.Response(
        200, json=[{"id": 1, "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample other"}]
    )
    handler, seen = scripted(listing)
    vast = provider(handler)
    await vast.ensure_account_ssh_key(key)
    assert [r.method for r in seen] == ["GET"]
    await vast.aclose()

    handler, seen = scripted(
        httpx.Response(200, json={"ssh_keys": []}), httpx.Response(200, json={"success": True})
    )
    vast = provider(handler)
    await vast.ensure_account_ssh_key(key)
    assert [r.method for r in seen] == ["GET", "POST"]
    assert json.loads(seen[1].content) == {"ssh_key": key}
    await vast.aclose()


async def test_a_list_where_an_object_belongs_is_an_error():
    handler, _ = scripted(httpx.Response(200, json=[{"id": 1}]))
    vast = provider(handler)
    with pytest.raises(ProviderError, match="search offers: unexpected response"):
        await vast.search_offers(OfferQuery())
    await vast.aclose()
