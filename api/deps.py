"""What route handlers receive by annotation: settings, a DB session, Temporal (the client and
`MachineClient`), the provider registry, the authenticated user, the caller's machine, and
everything an action on it needs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.schemas.common import NO_NUL, ActionAccepted
from api.temporal import TemporalConnector
from core.accounts import user_for_token
from core.contracts.states import MachineState
from core.models import Machine, User
from core.settings import Settings
from providers.registry import ProviderRegistry
from workflows.client import MachineClient

_bearer = HTTPBearer(auto_error=False, description="An API token (`dmt_...`).")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request; handlers commit what they mean to keep, the rest is rolled back."""
    engine: Engine = request.app.state.engine
    with Session(engine, expire_on_commit=False) as session:
        yield session


def get_connector(request: Request) -> TemporalConnector:
    connector: TemporalConnector = request.app.state.temporal
    return connector


async def get_temporal(connector: Annotated[TemporalConnector, Depends(get_connector)]) -> Client:
    return await connector.client()


async def get_machine_client(temporal: Annotated[Client, Depends(get_temporal)]) -> MachineClient:
    return MachineClient(temporal)


def get_providers(request: Request) -> ProviderRegistry:
    registry: ProviderRegistry = request.app.state.providers
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ConnectorDep = Annotated[TemporalConnector, Depends(get_connector)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
MachineClientDep = Annotated[MachineClient, Depends(get_machine_client)]
ProvidersDep = Annotated[ProviderRegistry, Depends(get_providers)]


def get_current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    user = user_for_token(session, credentials.credentials) if credentials else None
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API token" if credentials else "missing API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


MachineId = Annotated[
    str, Path(min_length=1, max_length=64, description="The machine's id"), NO_NUL
]


def owned_machine(machine_id: MachineId, user: CurrentUser, session: SessionDep) -> Machine:
    """The caller's machine; someone else's answers exactly like a missing one."""
    machine = session.get(Machine, machine_id)
    if machine is None or machine.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"machine {machine_id} not found")
    return machine


OwnedMachine = Annotated[Machine, Depends(owned_machine)]
Wait = Annotated[
    bool,
    Query(description="Wait until the action is done (true) or only until it is accepted (false)"),
]
Reason = Annotated[str | None, Query(max_length=500, description="Recorded with the event"), NO_NUL]


@dataclass
class MachineAction:
    """An action on the caller's machine, about to go to its workflow."""

    machine: Machine
    session: Session
    settings: Settings
    machines: MachineClient
    response: Response
    wait: bool

    def accepted(self, action: str, status_url: str) -> ActionAccepted:
        """The `?wait=false` answer: 202, and where to watch it progress."""
        self.response.status_code = status.HTTP_202_ACCEPTED
        self.response.headers["Location"] = status_url
        return ActionAccepted(machine_id=self.machine.id, action=action, status_url=status_url)


async def live_machine(machine: OwnedMachine, session: SessionDep) -> Machine:
    """The caller's machine, not destroyed, its connection back in the pool: what follows
    waits on Temporal, maybe for minutes. A commit (of nothing) rather than a rollback, which
    would expire `machine` and make the next attribute read a blocking query on the event
    loop."""
    if machine.status == MachineState.DESTROYED:
        raise HTTPException(status.HTTP_409_CONFLICT, "machine is destroyed")
    await run_in_threadpool(session.commit)
    return machine


LiveMachine = Annotated[Machine, Depends(live_machine)]


async def machine_action(
    machine: LiveMachine,
    session: SessionDep,
    settings: SettingsDep,
    machines: MachineClientDep,
    response: Response,
    wait: Wait = True,
) -> MachineAction:
    return MachineAction(
        machine=machine,
        session=session,
        settings=settings,
        machines=machines,
        response=response,
        wait=wait,
    )


ActionContext = Annotated[MachineAction, Depends(machine_action)]
