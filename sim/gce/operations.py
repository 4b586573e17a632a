"""Zonal operations: created by every mutation, finished by the lifecycle, waited on.

A repeated (project, zone, requestId) finds the operation it made the first time, so a retried
mutation acts once. `wait` holds the request until the operation is DONE (or 2 minutes pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

from sim.gce.errors import HTTP_MESSAGES, not_found, resource
from sim.gce.store import GceState, OperationRecord

WAIT_LIMIT = 120.0
# Completed operations kept per project; GCE also forgets old ones (a 404 then is normal).
RETAINED = 5000


def new_id() -> int:
    """A 19-digit uint64, as GCE's resource ids are."""
    return random.randint(10**18, 9 * 10**18)


def operation_name(prefix: str = "operation") -> str:
    millis = int(time.time() * 1000)
    return f"{prefix}-{millis}-{secrets.token_hex(7)[:13]}-{secrets.token_hex(4)}-" + (
        secrets.token_hex(4)
    )


def caller(project: str) -> str:
    return f"dumont-sim@{project}.iam.gserviceaccount.com"


class Operations:
    def __init__(self, state: GceState, save: Callable[[], None]) -> None:
        self.state = state
        self._save = save
        self._done: dict[str, asyncio.Event] = {}

    def find(self, project: str, zone: str, request_id: str | None) -> OperationRecord | None:
        if not request_id:
            return None
        for op in self.state.operations.values():
            if (op.project, op.zone, op.request_id) == (project, zone, request_id):
                return op
        return None

    def create(
        self,
        project: str,
        zone: str,
        operation_type: str,
        target_link: str,
        target_id: int,
        request_id: str | None,
        *,
        user: str | None = None,
        prefix: str = "operation",
    ) -> OperationRecord:
        now = time.time()
        op = OperationRecord(
            id=new_id(),
            name=operation_name(prefix),
            project=project,
            zone=zone,
            operation_type=operation_type,
            target_link=target_link,
            target_id=target_id,
            status="RUNNING",
            progress=0,
            inserted_at=now,
            started_at=now,
            user=user or caller(project),
            request_id=request_id,
        )
        self.state.operations[op.name] = op
        self._forget_old()
        self._save()
        return op

    def finish(
        self,
        op: OperationRecord,
        *,
        error: dict[str, Any] | None = None,
        http_status: int | None = None,
        status_message: str | None = None,
    ) -> None:
        """DONE, with both http fields on failure (the client ignores errors without them)."""
        op.status, op.progress, op.ended_at = "DONE", 100, time.time()
        if status_message is not None:
            op.status_message = status_message
        if error is not None:
            code = http_status or 400
            op.error = error
            op.http_error_status_code = code
            op.http_error_message = HTTP_MESSAGES.get(code, "ERROR")
        self._save()
        event = self._done.pop(op.name, None)
        if event is not None:
            event.set()

    def get(self, project: str, zone: str, name: str) -> OperationRecord:
        op = self.state.operations.get(name)
        if op is None or (op.project, op.zone) != (project, zone):
            raise not_found(resource(project, "zones", zone, "operations", name))
        return op

    async def wait(self, op: OperationRecord, limit: float = WAIT_LIMIT) -> OperationRecord:
        if op.status != "DONE":
            event = self._done.setdefault(op.name, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), limit)
        return op

    def unfinished(self, target_id: int) -> list[OperationRecord]:
        return [
            op
            for op in self.state.operations.values()
            if op.target_id == target_id and op.status != "DONE"
        ]

    def _forget_old(self) -> None:
        done = [op.name for op in self.state.operations.values() if op.status == "DONE"]
        for name in done[: max(0, len(done) - RETAINED)]:
            del self.state.operations[name]
