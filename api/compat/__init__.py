"""The seed's routes (`/api/instances/...`, `/api/hibernation/...`), kept apart from v1: same
paths, same JSON shapes, same status codes as the seed documents them."""

from __future__ import annotations

from fastapi import APIRouter

from api.compat import hibernation, instances, schedules

compat_router = APIRouter()
compat_router.include_router(instances.router)
compat_router.include_router(schedules.router)
compat_router.include_router(hibernation.router)
