"""What route handlers receive by annotation: settings, a DB session, the Temporal client, the
provider registry and the authenticated user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.temporal import TemporalConnector
from core.accounts import user_for_token
from core.models import User
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


async def get_temporal(request: Request) -> Client:
    connector: TemporalConnector = request.app.state.temporal
    return await connector.client()


async def get_machine_client(temporal: Annotated[Client, Depends(get_temporal)]) -> MachineClient:
    return MachineClient(temporal)


def get_providers(request: Request) -> ProviderRegistry:
    registry: ProviderRegistry = request.app.state.providers
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
ProvidersDep = Annotated[ProviderRegistry, Depends(get_providers)]
MachineClientDep = Annotated[MachineClient, Depends(get_machine_client)]


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
