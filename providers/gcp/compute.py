"""The official `google-cloud-compute` clients, driven from asyncio with retries, and the
operation wait that goes through the configured endpoint.

The clients are synchronous (requests), so calls run on a thread pool of their own: a fleet's
operation waits block a thread each and must not starve the default executor the activities
use for database work. `ExtendedOperation.result()` is never used: it polls the public
endpoint whatever `api_endpoint` says (reference/gce_api.md §1.2), so this waits with
`zoneOperations.wait` on the same endpoint as every other call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as google
from google.auth.credentials import Credentials
from google.cloud import compute_v1

from providers.base import ProviderError, RateLimited
from providers.gcp.errors import from_api_error, from_operation
from providers.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
# How long one call may take on the wire, and how long an operation may run (GCE's own
# creates take tens of seconds; a stuck one must not hold an activity forever).
CALL_TIMEOUT_SECONDS = 60.0
OPERATION_TIMEOUT_SECONDS = 600.0
# zoneOperations.wait blocks up to 2 minutes server-side; the client waits a little longer.
WAIT_CALL_TIMEOUT_SECONDS = 130.0
_RETRYABLE_TRANSPORT = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


class Compute:
    """One project's instance and operation clients on one endpoint."""

    def __init__(
        self,
        project: str,
        credentials: Credentials,
        *,
        endpoint: str | None = None,
        threads: int = 32,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.project = project
        options = {"api_endpoint": endpoint} if endpoint else None
        kwargs: dict[str, Any] = {
            "client_options": options,
            "credentials": credentials,
            "transport": "rest",
        }
        self.instances = compute_v1.InstancesClient(**kwargs)
        self.zone_operations = compute_v1.ZoneOperationsClient(**kwargs)
        self.global_operations = compute_v1.GlobalOperationsClient(**kwargs)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="gcp")
        self._retry = retry or RetryPolicy(max_retries=4)

    async def _run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, **kwargs))

    async def call(self, fn: Callable[..., T], what: str, /, **kwargs: Any) -> T:
        """One client call, retried while GCE says "not now" (429, rate quota, 5xx, a lost
        connection). Only reads and calls carrying a requestId come here: repeating them
        cannot act twice."""
        kwargs.setdefault("timeout", CALL_TIMEOUT_SECONDS)
        for attempt in range(self._retry.max_retries + 1):
            try:
                return await self._run(fn, **kwargs)
            except google.GoogleAPICallError as exc:
                error = from_api_error(exc, what)
            except google.RetryError as exc:  # the client's own read retries ran out
                error = ProviderError(f"gcp: {what} failed: {exc}")
            except _RETRYABLE_TRANSPORT as exc:
                error = ProviderError(f"gcp: {what} failed: {type(exc).__name__}: {exc}")
            if not error.retryable or attempt == self._retry.max_retries:
                raise error
            retry_after = error.retry_after if isinstance(error, RateLimited) else None
            delay = self._retry.delay(attempt, retry_after)
            log.info("gcp: %s: %s; retry %d in %.2fs", what, error, attempt + 1, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def wait(self, operation: compute_v1.Operation, what: str, *, zone: str) -> None:
        """Until `operation` is DONE; raises its error, typed, when it failed."""
        deadline = time.monotonic() + OPERATION_TIMEOUT_SECONDS
        pause = 0.1
        while operation.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"gcp: {what}: operation {operation.name} still {operation.status.name}"
                    f" after {OPERATION_TIMEOUT_SECONDS:.0f} s"
                )
            started = time.monotonic()
            operation = await self.call(
                self.zone_operations.wait,
                f"wait for {what}",
                project=self.project,
                zone=zone,
                operation=operation.name,
                timeout=WAIT_CALL_TIMEOUT_SECONDS,
            )
            # `wait` may answer at once without the operation done; don't spin on it.
            if operation.status != compute_v1.Operation.Status.DONE:
                if time.monotonic() - started < pause:
                    await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
        error = from_operation(operation, what, zone=zone)
        if error is not None:
            raise error

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for client in (self.instances, self.zone_operations, self.global_operations):
            client.transport.close()
