"""The standby read model: a `StandbyStatus` from the workflow's outbox onto its
`machine_standby` row, and back (the API builds every answer from a `StandbyStatus`, whether
the workflow's own or the row's), and an owner's defaults as a `StandbyConfig`."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime

from sqlmodel import Session

from core.contracts.machine import InstanceInfo
from core.contracts.standby import (
    Side,
    StandbyConfig,
    StandbyReason,
    StandbyStatus,
    SyncHealth,
)
from core.db_types import utcnow
from core.standby.table import MachineStandby, StandbySettings

# The `StandbyConfig` fields each table holds as columns of the same name.
CONFIG_FIELDS = tuple(f.name for f in fields(StandbyConfig))
DEFAULT_FIELDS = tuple(name for name in CONFIG_FIELDS if name != "enabled")
# Longest words kept from the workflow (the columns' sizes).
_MAX_WORDS = 2000
# Where a GCE instance says its zone and type (`providers/gcp`'s `provider_data` keys).
_ZONE_KEY, _TYPE_KEY = "zone", "machine_type"


def _clip(words: str | None) -> str | None:
    return None if words is None else words[:_MAX_WORDS]


def apply_standby(
    session: Session, machine_id: str, status: StandbyStatus, at: datetime | None = None
) -> MachineStandby:
    """The machine's row as `status` says (created on its first report)."""
    row = session.get(MachineStandby, machine_id) or MachineStandby(machine_id=machine_id)
    config = status.config
    for name in CONFIG_FIELDS:
        value = getattr(config, name)
        setattr(row, name, list(value) if name == "excludes" else value)
    instance = status.instance
    row.instance_id = instance.instance_id if instance else None
    row.instance_provider = instance.provider if instance else None
    row.instance_zone = instance.provider_data.get(_ZONE_KEY) if instance else None
    row.instance_type = instance.provider_data.get(_TYPE_KEY) if instance else None
    row.price_per_hour = instance.price_per_hour if instance else None
    row.ssh_host = instance.ssh_host if instance else None
    row.ssh_port = instance.ssh_port if instance else None
    row.ssh_user = instance.ssh_user if instance else None
    row.side = status.side.value
    row.reason = status.reason.value if status.reason else None
    row.health = status.health.value
    row.last_sync_at = status.last_sync_at
    row.sync_error = _clip(status.sync_error)
    row.problem = _clip(status.problem)
    row.moved_at = status.moved_at
    row.updated_at = at or utcnow()
    session.add(row)
    return row


def config_of(
    row: MachineStandby | StandbySettings, *, enabled: bool | None = None
) -> StandbyConfig:
    """The config a row holds; a settings row has no `enabled` of its own: say it."""
    values = {name: getattr(row, name) for name in DEFAULT_FIELDS}
    values["excludes"] = list(values["excludes"] or [])
    on = enabled if enabled is not None else bool(getattr(row, "enabled", False))
    return StandbyConfig(enabled=on, **values)


def status_of(row: MachineStandby) -> StandbyStatus:
    """The row as the `StandbyStatus` it was written from (what the row does not keep, such as
    retry deadlines, takes its defaults)."""
    instance = None
    if row.instance_id is not None:
        data = {_ZONE_KEY: row.instance_zone, _TYPE_KEY: row.instance_type}
        instance = InstanceInfo(
            provider=row.instance_provider or row.provider,
            instance_id=row.instance_id,
            label="",
            offer_id="",
            gpu_name="",
            num_gpus=0,
            price_per_hour=row.price_per_hour or 0.0,
            ssh_host=row.ssh_host,
            ssh_port=row.ssh_port,
            ssh_user=row.ssh_user or "root",
            provider_data={k: v for k, v in data.items() if v is not None},
        )
    return StandbyStatus(
        config=config_of(row),
        instance=instance,
        side=Side(row.side),
        reason=StandbyReason(row.reason) if row.reason else None,
        health=SyncHealth(row.health),
        last_sync_at=row.last_sync_at,
        sync_error=row.sync_error,
        problem=row.problem,
        moved_at=row.moved_at,
    )


def owner_defaults(session: Session, owner_id: str) -> tuple[bool, StandbyConfig]:
    """(auto_standby, the defaults as an enabled config): the stored row, else the contract's."""
    row = session.get(StandbySettings, owner_id)
    if row is None:
        return False, StandbyConfig(enabled=True)
    return row.auto_standby, config_of(row, enabled=True)


def save_owner_defaults(
    session: Session, owner_id: str, auto_standby: bool, config: StandbyConfig
) -> StandbySettings:
    row = session.get(StandbySettings, owner_id) or StandbySettings(owner_id=owner_id)
    row.auto_standby = auto_standby
    for name in DEFAULT_FIELDS:
        value = getattr(config, name)
        setattr(row, name, list(value) if name == "excludes" else value)
    row.updated_at = utcnow()
    session.add(row)
    return row


def disabled(config: StandbyConfig) -> StandbyConfig:
    return replace(config, enabled=False)
