"""The whole product for the gateway tests, shared by every test of the session: the API (with
its gateway) under uvicorn on a real port (httpx's ASGI transport would buffer the streams),
a worker with every activity, the sim with SSH sandboxes and per-machine networks, an S3
endpoint, and the Temporal dev server. Machines run `service.py` as their on-start command.

Idleness is quick here: agents report every second, no setup grace, gateways report traffic
every second; each test picks its machine's idle timeout through `MachineClient`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from api.app import create_app
from api.gateway.app import Gateway
from core.accounts import create_user, issue_token
from core.contracts import machine_workflow_id
from core.contracts.serverless import ServerlessInput
from core.contracts.states import MachineState
from core.contracts.workflow import MachineSnapshot
from core.db import session_scope
from core.models import Event, ServerlessEndpoint, utcnow
from core.serverless.keys import hash_endpoint_key, key_prefix, new_endpoint_key
from core.settings import Settings
from tests.api.conftest import make_settings
from tests.fixtures.s3 import running_s3
from tests.fixtures.serving import listening_socket, serving
from tests.fixtures.sim import SimHandle, running_sim
from tests.fixtures.worker import running_worker
from workflows.client import MachineClient, MachineHandle
from workflows.machine import MachineWorkflow

SERVICE = (Path(__file__).parent / "service.py").read_text()
PORT = 8000
WAIT_SECONDS = 120
ON_START = (
    f'cat > "$HOME/service.py" <<\'EOF\'\n{SERVICE}\nEOF\nexec python3 "$HOME/service.py" {PORT}'
)
S = MachineState


@dataclass
class Machine:
    id: str
    key: str  # the endpoint key
    url: str  # its gateway URL
    instance_id: str

    def auth(self) -> dict[str, str]:
        return {"X-Dumont-Key": self.key}


@dataclass
class Stack:
    url: str
    app: FastAPI
    client: Client
    settings: Settings
    sim: SimHandle
    token: str
    owner_id: str

    @property
    def engine(self) -> Engine:
        engine: Engine = self.app.state.engine
        return engine

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    @property
    def machines(self) -> MachineClient:
        return MachineClient(self.client)

    def handle(self, machine_id: str) -> MachineHandle:
        return self.client.get_workflow_handle_for(
            MachineWorkflow.run, machine_workflow_id(machine_id)
        )

    async def state(self, machine_id: str) -> MachineSnapshot:
        return await self.handle(machine_id).query(MachineWorkflow.state)

    async def until_state(self, machine_id: str, *wanted: MachineState) -> MachineSnapshot:
        snapshot = None
        for _ in range(WAIT_SECONDS * 10):
            snapshot = await self.state(machine_id)
            if snapshot.state in wanted and not snapshot.outbox:
                return snapshot
            assert snapshot.state is not S.ERROR, snapshot.reason
            await asyncio.sleep(0.1)
        assert snapshot is not None
        raise AssertionError(
            f"never {wanted}: {snapshot.state} ({snapshot.reason}), "
            f"{snapshot.hibernation}, {snapshot.serverless}, {snapshot.agent}"
        )

    def events(self, machine_id: str) -> list[Event]:
        with Session(self.engine) as session:
            query = select(Event).where(Event.machine_id == machine_id).order_by(col(Event.id))
            return list(session.exec(query).all())

    async def until_event(self, machine_id: str, event_type: str) -> Event:
        """The machine's newest event of that type, once it is recorded."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                found = [e for e in self.events(machine_id) if e.event_type == event_type]
                if found:
                    return found[-1]
                await asyncio.sleep(0.1)

    def event_types(self, machine_id: str) -> list[str]:
        return [e.event_type for e in self.events(machine_id)]

    async def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60) as http:
            response = await http.request(method, path, **kw)
        assert response.status_code < 300, response.text
        return response.json()

    async def serverless_machine(
        self,
        *,
        idle_timeout_seconds: int = 3600,
        public: bool = False,
        via_ssh: bool = False,
        keep_alive_paths: tuple[str, ...] = (),
        readiness_path: str | None = "/health",
        max_pending_requests: int = 100,
        resume_timeout_seconds: int = 120,
    ) -> Machine:
        """A running machine serving `service.py` with serverless mode on (as the enable route
        leaves it: an endpoint row with the key's hash, the mode told to the workflow)."""
        body = {
            "gpu_name": "RTX 3090",
            "image": "ubuntu:22.04",
            "disk_gb": 20,
            "ports": [PORT],
            "on_start": ON_START,
        }
        machine_id = (await self.api("POST", "/api/v1/machines", json=body))["id"]
        running = await self.until_state(machine_id, S.RUNNING, S.IDLE)
        assert running.instance is not None
        key = new_endpoint_key()
        with session_scope(self.engine) as session:
            session.add(
                ServerlessEndpoint(
                    machine_id=machine_id,
                    owner_id=self.owner_id,
                    port=f"{PORT}/tcp",
                    readiness_path=readiness_path,
                    keep_alive_paths=list(keep_alive_paths),
                    max_pending_requests=max_pending_requests,
                    resume_timeout_seconds=resume_timeout_seconds,
                    public=public,
                    via_ssh=via_ssh,
                    key_hash=hash_endpoint_key(key),
                    key_prefix=key_prefix(key),
                    enabled_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        await self.machines.serverless_mode(
            machine_id,
            ServerlessInput(enabled=True, idle_timeout_seconds=idle_timeout_seconds),
        )
        url = f"{self.url}/serverless/{machine_id}"
        machine = Machine(machine_id, key, url, running.instance.instance_id)
        await self.until_served(machine)
        return machine

    async def until_served(self, machine: Machine) -> None:
        """Until the service answers through the gateway (it starts after the boot)."""
        async with asyncio.timeout(WAIT_SECONDS), httpx.AsyncClient(timeout=30) as http:
            while True:
                answer = await http.get(f"{machine.url}/health", headers=machine.auth())
                if answer.status_code == 200:
                    return
                await asyncio.sleep(0.2)

    async def pause(self, machine: Machine, *, gateway_knows: bool = True) -> None:
        """Pause the machine; `gateway_knows`: its gateway has read the paused route (else it
        may still hold the running one, as a gateway does for up to a second)."""
        await self.machines.act(machine.id, "pause", reason="test", wait=True)
        await self.until_state(machine.id, S.PAUSED)
        if gateway_knows:
            await self.gateway.routes.refresh(machine.id)

    async def destroy(self, machine: Machine) -> None:
        await self.machines.act(machine.id, "destroy", reason="test done", wait=True)


@asynccontextmanager
async def running_stack(root: Path, temporal: Client) -> AsyncIterator[Stack]:
    sock = listening_socket()
    host, port = sock.getsockname()
    url = f"http://{host}:{port}"
    async with running_sim(root / "sim") as sim:
        with running_s3(root / "s3") as s3:
            settings = make_settings(
                root,
                f"sqlite:///{root / 'dumont.db'}",
                temporal.service_client.config.target_host,
                vast_url=sim.url,
                vast_api_key=sim.api_key,
                public_api_url=url,
                boot_timeout_seconds=120,
                provider_poll_seconds=0.5,
                heartbeat_timeout_seconds=5,
                s3_endpoint=s3.endpoint,
                s3_access_key=s3.access_key,
                s3_secret_key=s3.secret_key,
                s3_bucket=s3.bucket,
                s3_region="us-east-1",
                snapshot_retry_seconds=1,
                snapshot_attempts=2,
                agent_interval_seconds=1,
                idle_grace_seconds=0,
                gateway_report_seconds=1,
                provision_attempts=1,
                wake_offer_attempts=1,
                wake_offer_retry_seconds=1,
            )
            app = create_app(settings)
            async with serving(app, sock):
                with session_scope(app.state.engine) as session:
                    user = create_user(session, "gateway-tester")
                    token = issue_token(session, user.id)
                async with running_worker(
                    temporal,
                    settings,
                    app.state.engine,
                    max_heartbeat_throttle_interval=timedelta(milliseconds=500),
                    default_heartbeat_throttle_interval=timedelta(milliseconds=500),
                ):
                    yield Stack(url, app, temporal, settings, sim, token, user.id)
