"""Snapshot and restore a machine's workspace: the engine runs on the machine over one SSH
session; these activities answer it (index, presigned URLs), heartbeat its progress and commit.

A retry of `snapshot_workspace` with the same snapshot id resumes: packs an earlier attempt
stored are in the index, so the engine is told not to upload their chunks again; and a snapshot
that already committed is returned as is. Nothing is committed unless every chunk is confirmed
in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncssh
from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from core.contracts.activities import ActivityName
from core.contracts.errors import ErrorType
from core.contracts.snapshots import (
    CollectGarbageRequest,
    CollectGarbageResult,
    RestoreRequest,
    RestoreResult,
    SnapshotProgress,
    SnapshotRequest,
    SnapshotResult,
)
from core.snapshots.channel import EngineGone, SshEngine
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.restore_run import RestoreRun
from core.snapshots.retention import expire_and_collect
from core.snapshots.session import (
    RestoreFailed,
    SnapshotFailed,
    SnapshotRun,
    SnapshotTarget,
)
from core.snapshots.store import ObjectStore, StoreError
from core.ssh import MachineUnreachable, SshIdentity, connect_machine

SNAPSHOT_FAILED = ErrorType.SNAPSHOT_FAILED
RESTORE_FAILED = ErrorType.RESTORE_FAILED
SSH_CONNECT_SECONDS = 30.0
# What the engine reports when a retry may help (the store or the network hiccuped).
_TRANSIENT = ("TransferError", "OSError", "ConnectionError")


@dataclass
class _Latest:
    progress: SnapshotProgress

    def update(self, progress: SnapshotProgress) -> None:
        self.progress = progress

    def details(self) -> dict[str, Any]:
        return asdict(self.progress)


class SnapshotActivities:
    def __init__(
        self, db: Engine, store: ObjectStore, identity: SshIdentity, policy: SnapshotPolicy
    ) -> None:
        self._db = db
        self._store = store
        self._identity = identity
        self._policy = policy

    @contextlib.asynccontextmanager
    async def _connect(
        self, host: str, port: int, user: str
    ) -> AsyncIterator[asyncssh.SSHClientConnection]:
        try:
            async with connect_machine(
                self._identity, host, port, user, SSH_CONNECT_SECONDS
            ) as conn:
                yield conn
        except MachineUnreachable as exc:
            raise ApplicationError(str(exc), type=ErrorType.MACHINE_UNREACHABLE) from exc

    @activity.defn(name=ActivityName.SNAPSHOT_WORKSPACE)
    async def snapshot_workspace(self, request: SnapshotRequest) -> SnapshotResult:
        target = SnapshotTarget(request.snapshot_id, request.owner_id, request.machine_id)
        latest = _Latest(SnapshotProgress(snapshot_id=request.snapshot_id, phase="connecting"))
        run = SnapshotRun(self._db, self._store, self._policy, target, latest.update)
        done = await asyncio.to_thread(run.open_books)
        if done is not None:
            return done
        async with heartbeating(latest.details):
            async with self._connect(request.ssh_host, request.ssh_port, request.ssh_user) as conn:
                try:
                    extra = ["--pack-mib", str(self._policy.pack_mib)]
                    channel = await SshEngine.start(conn, "create", request.workspace, extra)
                    return await run.run(channel)
                except (SnapshotFailed, EngineGone, StoreError) as exc:
                    raise ApplicationError(
                        f"snapshot {request.snapshot_id} of {request.machine_id} not committed: "
                        f"{exc}",
                        type=SNAPSHOT_FAILED,
                    ) from exc

    @activity.defn(name=ActivityName.RESTORE_WORKSPACE)
    async def restore_workspace(self, request: RestoreRequest) -> RestoreResult:
        latest = _Latest(SnapshotProgress(snapshot_id=request.snapshot_id, phase="connecting"))
        run = RestoreRun(
            self._db,
            self._store,
            self._policy,
            request.snapshot_id,
            request.owner_id,
            latest.update,
        )
        async with heartbeating(latest.details):
            try:
                await run.load()  # a missing or damaged snapshot fails before any SSH
            except RestoreFailed as exc:
                raise ApplicationError(str(exc), type=RESTORE_FAILED, non_retryable=True) from exc
            async with self._connect(request.ssh_host, request.ssh_port, request.ssh_user) as conn:
                try:
                    channel = await SshEngine.start(conn, "restore", request.workspace)
                    return await run.run(channel)
                except (RestoreFailed, EngineGone, StoreError) as exc:
                    message = str(exc)
                    transient = not isinstance(exc, RestoreFailed) or any(
                        f"restore failed: {kind}" in message for kind in _TRANSIENT
                    )
                    raise ApplicationError(
                        f"restore of {request.snapshot_id}: {message}",
                        type=RESTORE_FAILED,
                        non_retryable=not transient,
                    ) from exc

    @activity.defn(name=ActivityName.COLLECT_SNAPSHOT_GARBAGE)
    async def collect_snapshot_garbage(
        self, request: CollectGarbageRequest
    ) -> CollectGarbageResult:
        """Expire snapshots past retention, then delete packs no snapshot references."""
        report = await asyncio.to_thread(
            expire_and_collect,
            self._db,
            self._store,
            self._policy,
            datetime.now(UTC),
            request.owner_id,
        )
        return CollectGarbageResult(
            expired_snapshots=report.expired_snapshots,
            deleted_packs=report.deleted_packs,
            deleted_bytes=report.deleted_bytes,
            aborted_uploads=report.aborted_uploads,
        )
