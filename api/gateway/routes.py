"""Where each machine's requests go: its state and its service's public address (the `Machine`
projection) with its endpoint's configuration (`ServerlessEndpoint`), read from the database
and kept in memory. A cached route is answered at once and refreshed in the background when it
is older than `max_age` (stale-while-revalidate); one much older (the machine quiet, maybe paused
meanwhile) is read before it is used, and one is read at once after an upstream connect error.

A wake's answer carries the machine's instance before its projection is written: the route is
pinned to it until the database has a newer row (or `PIN_SECONDS` passed), so the requests that
follow a cold start do not see the old "resuming" row and wait again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.contracts.machine import InstanceInfo
from core.contracts.states import MachineState
from core.models import Machine, ServerlessEndpoint

log = logging.getLogger(__name__)

S = MachineState
PIN_SECONDS = 30.0
# An entry older than this many `max_age`s is read again before it is used.
STALE_FACTOR = 5
_MAX_ENTRIES = 10_000


def port_key(port: str) -> str:
    return port if "/" in port else f"{port}/tcp"


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    machine_id: str
    state: MachineState
    reason: str | None
    port: str  # "8000/tcp"
    address: str | None  # the port's public "host:port" while the machine runs
    ssh_host: str | None
    ssh_port: int | None
    key_hash: str
    public: bool
    via_ssh: bool
    keep_alive_paths: frozenset[str]
    readiness_path: str
    max_pending: int
    resume_timeout: float
    # The machine's SSH login (its provider's `ssh_user`), for `via_ssh` forwards.
    ssh_user: str = "root"
    updated_at: datetime | None = None

    @property
    def up(self) -> bool:
        if not self.state.is_up():
            return False
        if self.via_ssh:
            return bool(self.ssh_host and self.ssh_port)
        return self.address is not None

    def with_instance(self, state: MachineState, instance: InstanceInfo | None) -> Route:
        return replace(
            self,
            state=state,
            reason=None,
            address=instance.ports.get(self.port) if instance else None,
            ssh_host=instance.ssh_host if instance else None,
            ssh_port=instance.ssh_port if instance else None,
            ssh_user=instance.ssh_user if instance else self.ssh_user,
        )


def _state(status: str) -> MachineState:
    try:
        return MachineState(status)
    except ValueError:
        return S.ERROR


def load_route(engine: Engine, machine_id: str) -> Route | None:
    """The machine's route, or None when it has no enabled serverless endpoint (blocking)."""
    with Session(engine) as session:
        found = session.exec(
            select(ServerlessEndpoint, Machine)
            .join(Machine, Machine.id == ServerlessEndpoint.machine_id)  # type: ignore[arg-type]
            .where(ServerlessEndpoint.machine_id == machine_id)
        ).first()
    if found is None:
        return None
    endpoint, machine = found
    if not endpoint.enabled:
        return None
    port = port_key(endpoint.port)
    return Route(
        machine_id=machine.id,
        state=_state(machine.status),
        reason=machine.status_reason,
        port=port,
        address=(machine.ports or {}).get(port),
        ssh_host=machine.ssh_host,
        ssh_port=machine.ssh_port,
        ssh_user=machine.ssh_user or "root",  # rows written before the column: vast's root
        key_hash=endpoint.key_hash,
        public=endpoint.public,
        via_ssh=endpoint.via_ssh,
        keep_alive_paths=frozenset(endpoint.keep_alive_paths or ()),
        readiness_path=endpoint.readiness_path or "/",
        max_pending=endpoint.max_pending_requests,
        resume_timeout=float(endpoint.resume_timeout_seconds),
        updated_at=machine.updated_at,
    )


@dataclass(slots=True)
class _Entry:
    route: Route | None
    fetched: float  # monotonic


@dataclass(slots=True)
class _Pin:
    route: Route
    at: datetime  # wall clock, to compare with the projection's updated_at
    until: float  # monotonic


class RouteTable:
    def __init__(
        self, load: Callable[[str], Awaitable[Route | None]], *, max_age: float = 1.0
    ) -> None:
        self._load = load
        self.max_age = max_age
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Task[Route | None]] = {}
        self._pins: dict[str, _Pin] = {}

    async def get(self, machine_id: str) -> Route | None:
        entry = self._entries.get(machine_id)
        if entry is None:
            return await self.refresh(machine_id)
        age = time.monotonic() - entry.fetched
        if age > self.max_age * STALE_FACTOR:
            # Quiet for a while (the machine may have paused since): read it first. Under
            # steady traffic the background refreshes keep every entry younger than this.
            return await self.refresh(machine_id)
        if age > self.max_age and machine_id not in self._loading:
            self._start_load(machine_id)  # answered from the cache meanwhile
        return entry.route

    async def refresh(self, machine_id: str) -> Route | None:
        """Read the route now (joining a read under way). Raises what the database raised."""
        task = self._loading.get(machine_id) or self._start_load(machine_id)
        return await asyncio.shield(task)

    def pin(self, route: Route, state: MachineState, instance: InstanceInfo | None) -> Route:
        """What a wake answered, ahead of the projection."""
        pinned = route.with_instance(state, instance)
        now = time.monotonic()
        self._pins[route.machine_id] = _Pin(pinned, datetime.now(UTC), now + PIN_SECONDS)
        self._entries[route.machine_id] = _Entry(pinned, now)
        return pinned

    def _start_load(self, machine_id: str) -> asyncio.Task[Route | None]:
        task = asyncio.create_task(self._fetch(machine_id))
        self._loading[machine_id] = task
        task.add_done_callback(lambda _: self._loading.pop(machine_id, None))
        return task

    async def _fetch(self, machine_id: str) -> Route | None:
        try:
            route = await self._load(machine_id)
        except Exception:
            if machine_id in self._entries:  # keep serving the cached route meanwhile
                log.warning("route of %s not refreshed", machine_id, exc_info=True)
                return self._entries[machine_id].route
            raise
        route = self._unless_pinned(machine_id, route)
        if len(self._entries) >= _MAX_ENTRIES:
            self._evict()
        self._entries[machine_id] = _Entry(route, time.monotonic())
        return route

    def _unless_pinned(self, machine_id: str, route: Route | None) -> Route | None:
        pin = self._pins.get(machine_id)
        if pin is None:
            return route
        if (
            route is None
            or route.up
            or (route.updated_at is not None and route.updated_at > pin.at)
            or time.monotonic() > pin.until
        ):
            del self._pins[machine_id]
            return route
        held = pin.route  # the endpoint's settings from the database, where it runs from the pin
        return replace(
            route,
            state=held.state,
            reason=None,
            address=held.address,
            ssh_host=held.ssh_host,
            ssh_port=held.ssh_port,
            ssh_user=held.ssh_user,
        )

    def _evict(self) -> None:
        oldest = sorted(self._entries.items(), key=lambda item: item[1].fetched)
        for machine_id, _ in oldest[: len(oldest) // 2]:
            self._entries.pop(machine_id, None)
