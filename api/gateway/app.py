"""The gateway as an ASGI application: `/serverless/{machine_id}/{path...}` forwarded to the
machine's service. Raw ASGI, no dependency injection: the warm path is a cached route, a
constant-time key check, a header filter and the forward.

Per request: unknown machine or no enabled endpoint → 404; a keep-alive path needs no key,
is forwarded while the machine is up (not counted as activity) and answered here otherwise
(never resuming it); any other path needs the endpoint's key (401 without it, and the machine
is never woken); an up machine gets the request at once, one that is pausing, paused or on
its way up holds it (hold.py), a stopped or failed one answers 503 with why."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from datetime import datetime

import httpx
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.types import Receive, Scope, Send

from api.gateway import answers
from api.gateway.answers import RETRY_UNAVAILABLE, Refusal, send_json, send_refusal
from api.gateway.auth import check_key
from api.gateway.background import Background
from api.gateway.downstream import ClientGone, Downstream
from api.gateway.forward import NoAnswer, NotSent, forward
from api.gateway.headers import header, upstream_request_headers
from api.gateway.hold import HOLDS, Holds, Release
from api.gateway.routes import Route, RouteTable, load_route
from api.gateway.seams import SshTunnelSeam, Tunnels, TunnelUnavailable
from api.gateway.signals import on_stop_signal
from api.gateway.target import Target, parse_target
from api.gateway.traffic import Traffic
from api.gateway.upstream import UpstreamPool
from api.gateway.waker import SHUTDOWN, Waker
from api.gateway.ws_session import websocket_session
from api.temporal import TemporalConnector
from core.contracts.serverless import TrafficReport
from core.contracts.states import MachineState
from core.models import ServerlessColdStart, ServerlessEndpoint
from core.settings import Settings
from workflows.client import MachineClient

log = logging.getLogger(__name__)

S = MachineState
GONE = frozenset({S.DESTROYING, S.DESTROYED})
COLD_START = (b"x-dumont-cold-start", b"true")


def new_gateway_id() -> str:
    return f"gw-{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(3)}"


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway_id = new_gateway_id()
        self.upstream = UpstreamPool()
        # The readiness probes' client (rare, off the hot path).
        self.http = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self.background = Background()
        self.tunnels: Tunnels = SshTunnelSeam(settings)
        self.routes = RouteTable(self._load_route)
        self.traffic = Traffic(
            gateway_id=self.gateway_id,
            interval=settings.gateway_report_seconds,
            send=self._report,
            write_last_request=self._write_last_request,
        )
        self.waker = Waker(
            machines=self._machines,
            routes=self.routes,
            http=self.http,
            address_of=self.address_of,
            record=self._record_cold_start,
            background=self.background,
            gateway_id=self.gateway_id,
        )
        self.holds = Holds(self.waker.wake)
        self._engine: Engine | None = None
        self._temporal: TemporalConnector | None = None
        self._machine_client: MachineClient | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._undo_signals = lambda: None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, engine: Engine, temporal: TemporalConnector) -> None:
        self._engine = engine
        self._temporal = temporal
        self._reporter = asyncio.create_task(self.traffic.run())
        self._undo_signals = on_stop_signal(self.begin_shutdown)

    def begin_shutdown(self) -> None:
        """Held requests get 503 now (another process, or this one restarted, takes the next
        try), not after the server's graceful timeout; forwards in flight may finish."""
        if self.holds.closing is None:
            log.info("gateway %s stopping: held requests answered 503", self.gateway_id)
            self.holds.close(SHUTDOWN)

    async def stop(self) -> None:
        self.begin_shutdown()
        self._undo_signals()
        await self.holds.wait_closed()
        if self._reporter is not None:
            self._reporter.cancel()
        await self.traffic.flush()
        await self.background.drain(5)
        await self.tunnels.aclose()
        await self.http.aclose()
        await self.upstream.aclose()

    @property
    def closing(self) -> bool:
        return self.holds.closing is not None

    # --- what the parts need ---------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the gateway was not started")
        return self._engine

    async def _machines(self) -> MachineClient:
        if self._machine_client is None:
            assert self._temporal is not None, "the gateway was not started"
            self._machine_client = MachineClient(await self._temporal.client())
        return self._machine_client

    async def _load_route(self, machine_id: str) -> Route | None:
        return await asyncio.to_thread(load_route, self.engine, machine_id)

    async def _report(self, machine_id: str, report: TrafficReport) -> None:
        await (await self._machines()).report_traffic(machine_id, report)

    async def _write_last_request(self, machine_id: str, at: datetime) -> None:
        def write() -> None:
            with self.engine.begin() as connection:
                connection.execute(
                    update(ServerlessEndpoint)
                    .where(ServerlessEndpoint.machine_id == machine_id)  # type: ignore[arg-type]
                    .values(last_request_at=at)
                )

        await asyncio.to_thread(write)

    async def _record_cold_start(self, row: ServerlessColdStart) -> None:
        def write() -> None:
            with Session(self.engine) as session:
                session.add(row)
                session.commit()

        await asyncio.to_thread(write)

    async def address_of(self, route: Route) -> str:
        if route.via_ssh:
            return await self.tunnels.local_address(route)
        assert route.address is not None
        return route.address

    # --- requests --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = parse_target(scope)
        if scope["type"] == "websocket":
            await websocket_session(self, scope, receive, send, target)
            return
        if target is None:
            await send_refusal(send, answers.not_found())
            return
        downstream = Downstream(receive, has_body=_has_body(scope))
        try:
            await self._http(scope, send, target, downstream)
        except ClientGone:
            pass
        finally:
            await downstream.close()

    async def route(self, machine_id: str) -> Route | Refusal:
        try:
            route = await self.routes.get(machine_id)
        except Exception:  # noqa: BLE001 - the database is down and nothing is cached
            log.warning("route of %s unavailable", machine_id, exc_info=True)
            detail = "the gateway cannot read its routes; try again shortly"
            return Refusal(status=503, detail=detail, retry_after=RETRY_UNAVAILABLE)
        return route if route is not None else answers.not_found()

    async def _refreshed(self, route: Route) -> Route:
        """The route as the database has it now (the cached one if it cannot say)."""
        try:
            return await self.routes.refresh(route.machine_id) or route
        except Exception:  # noqa: BLE001 - the database is down: go on with what we know
            log.warning("route of %s not refreshed", route.machine_id, exc_info=True)
            return route

    async def _http(self, scope: Scope, send: Send, target: Target, downstream: Downstream) -> None:
        route = await self.route(target.machine_id)
        if isinstance(route, Refusal):
            await send_refusal(send, route)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        drop_authorization = False
        if target.path in route.keep_alive_paths:
            await self._keep_alive(scope, send, target, downstream, route)
            return
        if not route.public:
            check = check_key(headers, route.key_hash)
            if not check.ok:
                await send_refusal(
                    send, Refusal(status=401, detail=check.detail), unauthorized=True
                )
                return
            drop_authorization = check.drop_authorization
        outgoing = _outgoing(scope, drop_authorization=drop_authorization)
        if route.up:
            try:
                await self._forward(scope, send, downstream, route, target, outgoing, [])
                return
            except NotSent:
                # Paused or moved under us, or the service is restarting: the request was not
                # sent, so it may wait like any held one.
                if route.via_ssh:
                    await self.tunnels.drop(route.machine_id)
                route = await self._refreshed(route)
        if not route.up and route.state not in HOLDS:
            await send_refusal(send, not_serving(route))
            return
        released = await self.holds.wait(route, downstream)
        if released is None:
            return  # the client left while held
        if isinstance(released, Refusal):
            await send_refusal(send, released)
            return
        extra = cold_start_headers(released)
        try:
            await self._forward(scope, send, downstream, released.route, target, outgoing, extra)
        except NotSent as err:
            detail = f"the service did not accept the connection: {err}"
            await send_refusal(send, Refusal(status=502, detail=detail))

    async def _forward(
        self,
        scope: Scope,
        send: Send,
        downstream: Downstream,
        route: Route,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        extra: list[tuple[bytes, bytes]],
        *,
        counted: bool = True,
    ) -> None:
        try:
            address = await self.address_of(route)
        except TunnelUnavailable as err:
            await send_refusal(send, Refusal(status=503, detail=str(err)))
            return
        if counted:
            self.traffic.opened(route.machine_id)
        try:
            await forward(
                self.upstream,
                send,
                downstream,
                method=scope["method"],
                address=address,
                target=target.path_qs,
                headers=headers,
                extra_headers=extra,
            )
        except NoAnswer as err:
            await send_refusal(send, Refusal(status=502, detail=str(err)))
        finally:
            if counted:
                self.traffic.closed(route.machine_id)

    async def _keep_alive(
        self, scope: Scope, send: Send, target: Target, downstream: Downstream, route: Route
    ) -> None:
        """Forwarded while up, not counted as activity; answered here otherwise: a load
        balancer's health check must not keep a GPU billing, nor wake one."""
        if route.up:
            check = check_key(scope["headers"], route.key_hash)
            outgoing = _outgoing(scope, drop_authorization=check.drop_authorization)
            try:
                await self._forward(
                    scope, send, downstream, route, target, outgoing, [], counted=False
                )
                return
            except NotSent:
                route = await self._refreshed(route)
                if route.up:
                    await send_refusal(
                        send, Refusal(status=502, detail="the service is not answering")
                    )
                    return
        await send_json(
            send,
            200,
            {"status": "paused", "machine_id": route.machine_id, "state": route.state.value},
        )


def _outgoing(scope: Scope, *, drop_authorization: bool) -> list[tuple[bytes, bytes]]:
    """The headers the service receives for this request."""
    return upstream_request_headers(
        scope["headers"],
        client_ip=scope["client"][0] if scope.get("client") else None,
        scheme=scope.get("scheme", "http"),
        drop_authorization=drop_authorization,
    )


def _has_body(scope: Scope) -> bool:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    length = header(headers, b"content-length")
    if length is not None:
        return length.strip() not in (b"0", b"")
    return header(headers, b"transfer-encoding") is not None


def cold_start_headers(released: Release) -> list[tuple[bytes, bytes]]:
    if not released.resumed:
        return []
    return [COLD_START, (b"x-dumont-resume-ms", str(released.held_ms).encode())]


def not_serving(route: Route) -> Refusal:
    if route.state in GONE:
        return answers.not_found("machine is destroyed")
    why = f"machine is {route.state.value}"
    if route.reason:
        why += f": {route.reason}"
    if route.state.is_up():  # up, but its port has no public address
        why = f"machine serves no port {route.port}"
    return Refusal(status=503, detail=why)
