"""Snapshot settings as one value the control plane's pieces take."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings


@dataclass(frozen=True)
class SnapshotPolicy:
    keep_last: int = 3
    deleted_retention_days: int = 0  # 0: kept until the user deletes them
    price_per_gb_month: float = 0.015
    gc_grace_seconds: float = 24 * 3600.0
    pack_mib: int = 16
    url_ttl_seconds: int = 21600

    @classmethod
    def from_settings(cls, settings: Settings) -> SnapshotPolicy:
        return cls(
            keep_last=settings.snapshot_keep_last,
            deleted_retention_days=settings.snapshot_deleted_retention_days,
            price_per_gb_month=settings.snapshot_price_per_gb_month,
            gc_grace_seconds=settings.snapshot_gc_grace_hours * 3600.0,
            pack_mib=settings.snapshot_pack_mib,
            url_ttl_seconds=settings.snapshot_url_ttl_seconds,
        )
