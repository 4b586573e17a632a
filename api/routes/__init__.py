"""The v1 resource API (`/api/v1/...`) as one router. The agent's route (`routes/agent.py`,
called by machines with their own token) and the seed's (`api/compat/`) are included apart."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import (
    alerts,
    machines,
    metrics,
    offers,
    serverless,
    snapshot_retention,
    snapshots,
    ssh_keys,
    standby,
)

api_router = APIRouter()
api_router.include_router(machines.router)
api_router.include_router(offers.router)
api_router.include_router(ssh_keys.router)
api_router.include_router(metrics.router)
api_router.include_router(snapshots.router)
api_router.include_router(snapshot_retention.router)
api_router.include_router(alerts.router)
api_router.include_router(serverless.router)
api_router.include_router(standby.router)
api_router.include_router(standby.settings_router)
