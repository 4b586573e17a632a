"""One wake per machine and process: ask the machine's workflow to be up for a held request
(`wake_for_request`; the workflow serialises resumes, so any number of gateways trigger one),
then poll the service's readiness path until it answers below 500, all within the endpoint's
`resume_timeout_seconds`. Each wake that resumed the machine or failed leaves a
`ServerlessColdStart` row (the status route's latency figures); a timeout is also signalled to
the workflow, so that the machine's events say why its clients got 503."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.service import RPCError

from api.gateway.answers import (
    RETRY_RESTARTING,
    RETRY_RESUME_FAILED,
    RETRY_TIMED_OUT,
    RETRY_UNAVAILABLE,
    Refusal,
    not_found,
)
from api.gateway.background import Background
from api.gateway.routes import Route, RouteTable
from api.gateway.seams import TunnelUnavailable
from api.temporal import TemporalUnavailable
from core.contracts.serverless import ColdStartGaveUp, WakeForRequestInput
from core.contracts.states import MachineState
from core.models import ServerlessColdStart
from workflows.client import (
    ActionFailed,
    ActionRejected,
    MachineClient,
    MachineDestroyed,
    MachineNotFound,
    StillRunning,
)

S = MachineState
READY_POLL_SECONDS = 0.1
_PROBE_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
# Refused by the workflow only for a moment: the machine ends up in a state that waits.
_PASSING = frozenset({S.HIBERNATING})
# A failed wake leaves these: the resume can be tried again.
_RETRYABLE = frozenset({S.PAUSED, S.HIBERNATED, S.DELETED, S.PAUSING, S.RESUMING, S.WAKING})


@dataclass(frozen=True, kw_only=True, slots=True)
class WakeOutcome:
    route: Route | None = None  # up, its service answering: where the held requests go
    resumed: bool = False  # the wait included a resume (a cold start)
    refusal: Refusal | None = None


class _Failed(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Waker:
    def __init__(
        self,
        *,
        machines: Callable[[], Awaitable[MachineClient]],
        routes: RouteTable,
        http: httpx.AsyncClient,
        address_of: Callable[[Route], Awaitable[str]],
        record: Callable[[ServerlessColdStart], Coroutine[Any, Any, None]],
        background: Background,
        gateway_id: str,
    ) -> None:
        self._machines = machines
        self._routes = routes
        self._http = http
        self._address_of = address_of
        self._record = record
        self._background = background
        self.gateway_id = gateway_id

    async def wake(self, route: Route, held: Callable[[], int]) -> WakeOutcome:
        started = time.monotonic()
        up_at: float | None = None
        resumed = False
        outcome, reason = "failed", None
        try:
            async with asyncio.timeout(route.resume_timeout):
                woken, resumed = await self._up(route, held)
                up_at = time.monotonic()
                await self._until_ready(woken)
            outcome = "ok"
            return WakeOutcome(route=woken, resumed=resumed)
        except _Failed as failed:
            reason = failed.refusal.detail
            return WakeOutcome(refusal=failed.refusal)
        except TimeoutError:
            outcome = "timed_out"
            seconds = f"{route.resume_timeout:g} s"
            reason = (
                f"the machine was not up within {seconds}"
                if up_at is None
                else f"the service did not answer {route.readiness_path} within {seconds}"
            )
            self._gave_up(route, reason, held())
            return WakeOutcome(
                refusal=Refusal(status=503, detail=reason, retry_after=RETRY_TIMED_OUT)
            )
        except asyncio.CancelledError:
            outcome, reason = "shutdown", "the gateway stopped while requests were held"
            self._gave_up(route, reason, held())
            raise
        finally:
            if resumed or outcome != "ok":
                end = time.monotonic()
                row = ServerlessColdStart(
                    machine_id=route.machine_id,
                    outcome=outcome,
                    held=held(),
                    resume_ms=_ms(up_at - started) if up_at is not None else None,
                    ready_ms=_ms(end - up_at) if up_at is not None and outcome == "ok" else None,
                    total_ms=_ms(end - started),
                    reason=reason,
                )
                self._background.spawn(self._record(row), "cold start record")

    async def _up(self, route: Route, held: Callable[[], int]) -> tuple[Route, bool]:
        """The machine up (resumed if it was not), as its workflow answered."""
        while True:
            try:
                machines = await self._machines()
                n = held()
                result = await machines.wake_for_request(
                    route.machine_id,
                    WakeForRequestInput(reason=f"{n} request(s) held by gateway {self.gateway_id}"),
                )
            except (MachineNotFound, MachineDestroyed) as err:
                raise _Failed(not_found(err.message)) from err
            except ActionRejected as err:
                current = await self._routes.refresh(route.machine_id)
                if current is not None and current.state in _PASSING:
                    await asyncio.sleep(0.5)
                    continue
                raise _Failed(Refusal(status=503, detail=err.problem)) from err
            except ActionFailed as err:
                detail = f"resume failed: {err.problem}"
                raise _Failed(
                    Refusal(status=503, detail=detail, retry_after=RETRY_RESUME_FAILED)
                ) from err
            except (StillRunning, TemporalUnavailable, RPCError) as err:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # The SDK turns a cancelled wait into its own error: this is the shutdown.
                    raise asyncio.CancelledError from err
                detail = f"the control plane did not answer: {err}"
                raise _Failed(
                    Refusal(status=503, detail=detail, retry_after=RETRY_UNAVAILABLE)
                ) from err
            if result.problem is not None or not result.state.is_up():
                retry = RETRY_RESUME_FAILED if result.state in _RETRYABLE else None
                problem = result.problem or f"machine is {result.state}"
                raise _Failed(Refusal(status=503, detail=problem, retry_after=retry))
            woken = self._routes.pin(route, result.state, result.instance)
            if not woken.up:
                detail = f"machine serves no port {route.port}"
                raise _Failed(Refusal(status=503, detail=detail))
            return woken, result.resumed

    async def _until_ready(self, route: Route) -> None:
        while True:
            try:
                address = await self._address_of(route)
            except TunnelUnavailable:  # SSH not answering yet
                await asyncio.sleep(READY_POLL_SECONDS)
                continue
            url = f"http://{address}{route.readiness_path}"
            try:
                request = self._http.build_request("GET", url, timeout=_PROBE_TIMEOUT)
                response = await self._http.send(request, stream=True)
                await response.aclose()
                if response.status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(READY_POLL_SECONDS)

    def _gave_up(self, route: Route, reason: str, held: int) -> None:
        async def signal() -> None:
            machines = await self._machines()
            signal = ColdStartGaveUp(gateway_id=self.gateway_id, reason=reason, held=held)
            await asyncio.wait_for(machines.cold_start_gave_up(route.machine_id, signal), 5)

        self._background.spawn(signal(), "cold start gave-up signal")


SHUTDOWN = Refusal(
    status=503,
    detail="gateway restarting: the request was held and not sent; send it again",
    retry_after=RETRY_RESTARTING,
)
