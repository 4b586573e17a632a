"""Dataclasses in and out of the snapshot activities."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SnapshotRequest:
    # Chosen by the caller and stable across retries: a retry resumes the same snapshot.
    snapshot_id: str
    owner_id: str
    machine_id: str
    ssh_host: str
    ssh_port: int
    ssh_user: str = "root"
    workspace: str = "/workspace"


@dataclass(frozen=True, kw_only=True)
class SnapshotResult:
    snapshot_id: str
    root_hash: str
    files: int
    logical_bytes: int
    uploaded_bytes: int  # new pack bytes this snapshot put in the store, all attempts
    stored_bytes: int
    packs: int
    seconds: float


@dataclass(frozen=True, kw_only=True)
class RestoreRequest:
    snapshot_id: str
    owner_id: str
    ssh_host: str
    ssh_port: int
    ssh_user: str = "root"
    workspace: str = "/workspace"


@dataclass(frozen=True, kw_only=True)
class RestoreResult:
    snapshot_id: str
    root_hash: str
    files: int
    bytes: int
    downloaded_bytes: int
    seconds: float
    # File content an interrupted earlier attempt had staged, checked and kept (not downloaded).
    reused_bytes: int = 0

    def summary(self) -> str:
        """One line for the machine's event history."""
        line = (
            f"{self.files} files, {_size(self.bytes)} in {self.seconds:.1f} s, "
            f"{_size(self.downloaded_bytes)} downloaded"
        )
        if self.reused_bytes:
            line += f", {_size(self.reused_bytes)} kept from an interrupted attempt"
        return line


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


@dataclass(frozen=True, kw_only=True)
class SnapshotProgress:
    """Heartbeat details of a running snapshot or restore."""

    snapshot_id: str
    phase: str  # scanning | uploading | committing | downloading | done
    files: int = 0
    bytes_scanned: int = 0
    bytes_uploaded: int = 0
    packs_uploaded: int = 0
    bytes_downloaded: int = 0


@dataclass(frozen=True, kw_only=True)
class CollectGarbageRequest:
    owner_id: str | None = None  # None: every owner


@dataclass(frozen=True, kw_only=True)
class CollectGarbageResult:
    expired_snapshots: int
    deleted_packs: int
    deleted_bytes: int
    aborted_uploads: int = 0
