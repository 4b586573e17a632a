"""The vast.ai provider over its REST API (the contract of the official SDK), with httpx.

Runs unchanged against https://console.vast.ai and the local marketplace in sim/.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import httpx

from core.contracts.machine import MachineKind
from core.contracts.providers import ProviderFeature
from core.contracts.states import InstanceStatus
from core.settings import Settings
from providers.base import (
    CreateRequest,
    InstanceNotFound,
    Offer,
    OfferQuery,
    OfferUnavailable,
    ProviderError,
    ProviderInstance,
    Unconfigured,
    unsupported,
)
from providers.retry import RETRYABLE_STATUS, RetryPolicy, parse_retry_after
from providers.vast.bids import create_price, refused_bid
from providers.vast.errors import (
    CreatedStopped,
    SearchQuotaExceeded,
    UncertainOutcome,
    error_for,
    failure_for,
    redact,
)
from providers.vast.labels import InstallationLabels
from providers.vast.wire import (
    PROVIDER_NAME,
    account_keys,
    create_env,
    key_identity,
    offer_matches,
    parse_instance,
    parse_offer,
    search_body,
    sort_offers,
)

log = logging.getLogger(__name__)

DEFAULT_URL = "https://console.vast.ai"
# Both proxy and direct SSH: direct is faster, the proxy works on hosts without open ports.
SSH_RUNTYPE = "ssh_direc ssh_proxy"
# The v1 instance list serves at most 25 rows per page.
PAGE_SIZE = 25

JsonObject = dict[str, Any]


class VastProvider:
    """`Provider` for vast.ai, with every capability. Every mutating call is safe to repeat (see
    `create_instance`)."""

    name = PROVIDER_NAME
    UNSUPPORTED: ClassVar[dict[ProviderFeature, str]] = {
        ProviderFeature.CPU_MACHINES: "vast.ai rents GPU machines only",
        ProviderFeature.MACHINE_CATALOGUE: "vast.ai sells live offers, not machine types",
    }

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        installation: str | None = None,
    ) -> None:
        self._api_key = api_key
        self._labels = InstallationLabels(installation)
        self._retry = retry or RetryPolicy(max_retries=max_retries)
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "dumont-cloud",
            },
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> VastProvider | Unconfigured:
        if settings.vast_api_key is None:
            return Unconfigured(cls.name, "set VAST_API_KEY (or DUMONT_VAST_API_KEY)")
        return cls(
            settings.vast_url,
            settings.vast_api_key.get_secret_value(),
            installation=settings.installation_id,
        )

    def __repr__(self) -> str:
        return f"VastProvider({str(self._client.base_url)!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- offers ---------------------------------------------------------------------------

    async def search_offers(self, query: OfferQuery) -> list[Offer]:
        if query.kind is MachineKind.CPU:
            raise unsupported(self, ProviderFeature.CPU_MACHINES)
        body = await self._call_object(
            "POST", "/api/v0/bundles/", "search offers", json_body=search_body(query)
        )
        rows = body.get("offers")
        if not isinstance(rows, list):
            raise self._unexpected("search offers", body)
        by_id: dict[str, JsonObject] = {}
        offers: list[Offer] = []
        for row in rows:
            if not isinstance(row, dict) or row.get("id") is None:
                raise self._unexpected("search offers", row)
            offer = parse_offer(row)
            if offer_matches(row, offer, query):
                by_id[offer.offer_id] = row
                offers.append(offer)
        sort_offers(offers, by_id, query)
        return offers[: query.limit]

    # --- create ---------------------------------------------------------------------------

    async def create_instance(self, request: CreateRequest) -> ProviderInstance:
        """Rent `request.offer_id`, or adopt the live instance already carrying `request.label`.

        vast has no idempotency key, so the label is the handle: it is looked up before renting,
        and again after any failure that may have rented anyway (timeout, dropped connection,
        5xx), instead of blindly renting again.
        """
        if existing := await self._live_with_label(request.label):
            return existing
        payload: JsonObject = {
            "client_id": "me",
            "image": request.image,
            "disk": float(request.disk_gb),
            "label": self._labels.written(request.label),
            "env": create_env(request.env, request.ports),
            "onstart": request.onstart,
            "runtype": SSH_RUNTYPE,
            "cancel_unavail": True,  # fail now rather than park a stopped instance
        }
        if (price := create_price(request)) is not None:
            payload["price"] = price  # its presence makes the instance interruptible
        what = f"create instance on offer {request.offer_id}"
        uncertain: UncertainOutcome | None = None
        for attempt in range(self._retry.max_retries + 1):
            try:
                body = await self._call_object(
                    "PUT",
                    f"/api/v0/asks/{request.offer_id}/",
                    what,
                    json_body=payload,
                    retry_uncertain=False,
                )
            except CreatedStopped as exc:
                raise await self._refused_bid(request, price, exc) from exc
            except UncertainOutcome as exc:
                uncertain = exc
                if adopted := await self._live_with_label(request.label):
                    return adopted
                if attempt < self._retry.max_retries:
                    await asyncio.sleep(self._retry.delay(attempt))
                continue
            except OfferUnavailable:
                # An earlier attempt whose answer was lost may be the one that took the offer.
                if uncertain and (adopted := await self._live_with_label(request.label)):
                    return adopted
                raise
            instance_id = body.get("new_contract")
            if instance_id is None:
                raise self._unexpected(what, body)
            instance = await self.get_instance(str(instance_id))
            if instance is None:
                raise ProviderError(f"vast: instance {instance_id} vanished right after {what}")
            return instance
        assert uncertain is not None
        raise uncertain

    async def _refused_bid(
        self, request: CreateRequest, price: float | None, exc: CreatedStopped
    ) -> OfferUnavailable:
        """A bid below the offer's minimum: vast made the instance anyway, stopped. It is
        destroyed here (else it bills its disk, and a retry would adopt it by its label); a
        failed destroy raises instead, and the retry's look-up by label finds it again."""
        await self.destroy_instance(exc.instance_id)
        return refused_bid(request.offer_id, price, exc, exc.instance_id)

    async def _live_with_label(self, label: str) -> ProviderInstance | None:
        for instance in await self.find_by_exact_label(label):
            if instance.status is not InstanceStatus.GONE:
                return instance
        return None

    # --- listing --------------------------------------------------------------------------

    async def find_by_label(self, label_prefix: str) -> list[ProviderInstance]:
        """Every instance whose label starts with `label_prefix` (vast filters only by equality,
        so this pages through all instances)."""
        return [
            instance
            for instance in await self.list_instances()
            if instance.label is not None and instance.label.startswith(label_prefix)
        ]

    async def find_by_exact_label(self, label: str) -> list[ProviderInstance]:
        return await self.list_instances({"label": {"in": self._labels.candidates(label)}})

    async def list_instances(
        self, select_filters: JsonObject | None = None
    ) -> list[ProviderInstance]:
        """`GET /api/v1/instances/`, following `next_token` to the end.

        An envelope without an instance list is an error, never "no instances": reading a
        deprecation notice as an empty fleet is how duplicate rentals happen.
        """
        params: JsonObject = {
            "select_filters": select_filters or {},
            "order_by": [{"col": "id", "dir": "asc"}],
            "limit": PAGE_SIZE,
        }
        instances: list[ProviderInstance] = []
        seen_tokens: set[str] = set()
        while True:
            body = await self._call_object(
                "GET", "/api/v1/instances/", "list instances", params=params
            )
            rows = body.get("instances")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise self._unexpected("list instances", body)
            instances.extend(self._parse(row) for row in rows)
            token = body.get("next_token")
            if not token:
                return instances
            if not isinstance(token, str) or token in seen_tokens:
                raise self._unexpected("list instances (paging)", body)
            seen_tokens.add(token)
            params["after_token"] = token

    async def get_instance(self, instance_id: str) -> ProviderInstance | None:
        try:
            body = await self._call_object(
                "GET",
                f"/api/v0/instances/{instance_id}/",
                f"get instance {instance_id}",
                params={"owner": "me"},
            )
        except InstanceNotFound:
            return None
        if "instances" not in body:
            raise self._unexpected(f"get instance {instance_id}", body)
        row = body["instances"]
        if row is None:
            return None  # destroyed, or never ours
        if not isinstance(row, dict):
            raise self._unexpected(f"get instance {instance_id}", body)
        return self._parse(row)

    def _parse(self, row: JsonObject) -> ProviderInstance:
        instance = parse_instance(row)
        instance.installation_marked = self._labels.marked(instance.label)
        instance.label = self._labels.read(instance.label)
        return instance

    # --- lifecycle ------------------------------------------------------------------------

    async def start_instance(self, instance_id: str) -> None:
        await self._call(
            "PUT",
            f"/api/v0/instances/{instance_id}/",
            f"start instance {instance_id}",
            json_body={"state": "running"},
        )

    async def stop_instance(self, instance_id: str) -> None:
        await self._call(
            "PUT",
            f"/api/v0/instances/{instance_id}/",
            f"stop instance {instance_id}",
            json_body={"state": "stopped"},
        )

    async def reboot_instance(self, instance_id: str) -> None:
        await self._call(
            "PUT",
            f"/api/v0/instances/reboot/{instance_id}/",
            f"reboot instance {instance_id}",
            json_body={},
        )

    async def destroy_instance(self, instance_id: str) -> None:
        """Destroy; an instance that is already gone counts as destroyed."""
        try:
            await self._call(
                "DELETE",
                f"/api/v0/instances/{instance_id}/",
                f"destroy instance {instance_id}",
                json_body={},
            )
        except InstanceNotFound:
            log.debug("vast instance %s already gone", instance_id)

    # --- SSH keys -------------------------------------------------------------------------

    async def attach_ssh_key(self, instance_id: str, public_key: str) -> None:
        await self._call(
            "POST",
            f"/api/v0/instances/{instance_id}/ssh/",
            f"attach ssh key to {instance_id}",
            json_body={"ssh_key": public_key.strip()},
        )

    async def ensure_account_ssh_key(self, public_key: str) -> None:
        """Add the key to the account (vast then puts it on every new instance) unless present."""
        wanted = key_identity(public_key)
        body = await self._call("GET", "/api/v0/ssh/", "list account ssh keys")
        if wanted in {key_identity(key) for key in account_keys(body)}:
            return
        await self._call(
            "POST", "/api/v0/ssh/", "add account ssh key", json_body={"ssh_key": public_key.strip()}
        )

    # --- HTTP -----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: JsonObject | None = None,
        json_body: JsonObject | None = None,
        retry_uncertain: bool = True,
    ) -> Any:
        """One API call with retries; returns the decoded JSON body or raises a typed error.

        429 and connection failures are retried always (nothing happened); 502/503/504 and
        timeouts only when `retry_uncertain`, since they may have taken effect.
        """
        # The SDK's convention: every non-string query value travels JSON-encoded.
        query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (params or {}).items()}
        for attempt in range(self._retry.max_retries + 1):
            last = attempt == self._retry.max_retries
            try:
                response = await self._client.request(method, path, params=query, json=json_body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error: ProviderError = ProviderError(self._transport_message(what, exc))
                retry_after = None
            except httpx.TransportError as exc:  # sent, answer lost: may have happened
                error = UncertainOutcome(self._transport_message(what, exc))
                if not retry_uncertain:
                    raise error from exc
                retry_after = None
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return self._decode(response, what)
                error = error_for(response, what, api_key=self._api_key)
                retry_after = parse_retry_after(response.headers)
                if isinstance(error, SearchQuotaExceeded):
                    raise error
                if retry_after is not None and retry_after > self._retry.max_retry_after:
                    raise error  # a long wait is the caller's scheduler's business
                if isinstance(error, UncertainOutcome) and not retry_uncertain:
                    raise error
            if last:
                raise error
            delay = self._retry.delay(attempt, retry_after)
            log.info("vast: %s: %s; retry %d in %.2fs", what, error, attempt + 1, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _call_object(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: JsonObject | None = None,
        json_body: JsonObject | None = None,
        retry_uncertain: bool = True,
    ) -> JsonObject:
        """`_call` for the endpoints that answer a JSON object; anything else is an error."""
        body = await self._call(
            method, path, what, params=params, json_body=json_body, retry_uncertain=retry_uncertain
        )
        if not isinstance(body, dict):
            raise self._unexpected(what, body)
        return body

    def _decode(self, response: httpx.Response, what: str) -> Any:
        if not response.is_success:
            raise failure_for(response, what, api_key=self._api_key)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._unexpected(what, response.text) from exc
        if isinstance(body, dict) and body.get("success") is False:
            raise failure_for(response, what, api_key=self._api_key)
        return body

    def _transport_message(self, what: str, exc: Exception) -> str:
        reason = str(exc) or type(exc).__name__
        return redact(f"vast: {what} failed: {reason}", self._api_key)

    def _unexpected(self, what: str, body: object) -> ProviderError:
        error = ProviderError(
            redact(f"vast: {what}: unexpected response {str(body)[:300]}", self._api_key)
        )
        error.retryable = False
        return error
