"""Each owner's snapshot retention: their own `keep_last` and `deleted_retention_days` where they
set one, the global default (`SnapshotPolicy`) where they did not.

Only overrides are stored (null = the default), so changing the default reaches every owner who
never chose otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from core.models import SnapshotRetention, utcnow
from core.snapshots.policy import SnapshotPolicy

FIELDS = ("keep_last", "deleted_retention_days")
# What an owner may choose (inclusive): at least one snapshot per machine, at most ten years.
KEEP_LAST_RANGE = (1, 1000)
DELETED_RETENTION_DAYS_RANGE = (0, 3650)


@dataclass(frozen=True)
class RetentionRule:
    keep_last: int  # committed snapshots kept per machine
    deleted_retention_days: int  # 0: a deleted machine's snapshots are kept until deleted

    @classmethod
    def default(cls, policy: SnapshotPolicy) -> RetentionRule:
        return cls(policy.keep_last, policy.deleted_retention_days)


@dataclass(frozen=True)
class OwnerRetention:
    """What applies to an owner, the defaults it overrides, and whether it overrides any."""

    keep_last: int
    deleted_retention_days: int
    defaults: RetentionRule
    customized: bool

    @property
    def rule(self) -> RetentionRule:
        return RetentionRule(self.keep_last, self.deleted_retention_days)


@dataclass(frozen=True)
class RetentionChange:
    """Fields named in `given` change: to the value, or back to the default when it is None.
    Fields not named keep what they were."""

    keep_last: int | None = None
    deleted_retention_days: int | None = None
    given: frozenset[str] = field(default_factory=frozenset)


def _resolve(row: SnapshotRetention | None, policy: SnapshotPolicy) -> OwnerRetention:
    defaults = RetentionRule.default(policy)
    keep_last = row.keep_last if row is not None else None
    days = row.deleted_retention_days if row is not None else None
    return OwnerRetention(
        keep_last=defaults.keep_last if keep_last is None else keep_last,
        deleted_retention_days=defaults.deleted_retention_days if days is None else days,
        defaults=defaults,
        customized=keep_last is not None or days is not None,
    )


def effective_retention(session: Session, policy: SnapshotPolicy, owner_id: str) -> OwnerRetention:
    return _resolve(session.get(SnapshotRetention, owner_id), policy)


def rules_for(
    session: Session, policy: SnapshotPolicy, owner_ids: Iterable[str]
) -> dict[str, RetentionRule]:
    """The rule of each owner named, in one query (retention runs over every owner at once)."""
    wanted = set(owner_ids)
    rows = {
        row.owner_id: row
        for row in session.exec(
            select(SnapshotRetention).where(col(SnapshotRetention.owner_id).in_(wanted))
        )
    }
    return {owner: _resolve(rows.get(owner), policy).rule for owner in wanted}


def update_retention(
    session: Session, policy: SnapshotPolicy, owner_id: str, change: RetentionChange
) -> OwnerRetention:
    """Apply `change` to the owner's overrides (not committed: the caller's transaction)."""
    unknown = change.given - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown retention fields: {', '.join(sorted(unknown))}")
    existing = session.get(SnapshotRetention, owner_id)
    row = existing or SnapshotRetention(owner_id=owner_id)
    for name in change.given:
        setattr(row, name, getattr(change, name))
    if row.keep_last is None and row.deleted_retention_days is None:
        # Nothing overridden any more: no row, as for an owner who never set one.
        if existing is not None:
            session.delete(existing)
            session.flush()
        return _resolve(None, policy)
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return _resolve(row, policy)


def reset_retention(session: Session, policy: SnapshotPolicy, owner_id: str) -> OwnerRetention:
    """Back to the defaults for both fields (not committed: the caller's transaction)."""
    return update_retention(session, policy, owner_id, RetentionChange(given=frozenset(FIELDS)))
