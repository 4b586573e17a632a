"""The fleet reconciler's activity: every configured provider's instances carrying this
installation's Dumont labels, against the machines' rows. An instance no live machine owns
bills for nothing: it is logged (and recorded) the first time it is seen, and with policy
`destroy` destroyed once it has been an orphan for the grace period. A machine that is up on
an instance the provider no longer lists (or lists failed or interrupted) is told so with a
`provider_event` signal: its workflow checks with the provider and fails over, hibernates from
its last snapshot, or goes to error (workflows/machine/failover.py).

Safe to run again: the first sighting is kept in the database, and a destroy of a gone
instance is done. Only instances whose label carries this installation's id are ever
destroyed (a label from before installations were marked may be another installation's).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.service import RPCError

from activities.heartbeat import heartbeating
from activities.provider import ProviderLookup
from core.contracts.activities import ActivityName
from core.contracts.monitor import MonitorTick, ReconcileResult
from core.contracts.standby import ProviderEvent, machine_of_standby_label
from core.contracts.states import InstanceStatus, MachineState
from core.db import session_scope
from core.models import Machine
from core.orphans.ownership import (
    LABEL_PREFIX,
    MachineRow,
    StandbyRow,
    machine_of_label,
    why_orphan,
    why_standby_orphan,
)
from core.orphans.table import OrphanInstance
from core.standby.table import MachineStandby
from providers.base import Provider, ProviderError, ProviderInstance
from workflows.client import MachineDestroyed, MachineNotFound

OrphanPolicy = Literal["report", "destroy"]
# A create may take this long before its machine's row names the instance (the provision
# activity's own limit): an orphan is never judged younger than that.
CREATE_TIMEOUT = timedelta(minutes=5)
# The states in which a machine's row names an instance that should be up.
_WATCHED = (MachineState.RUNNING, MachineState.IDLE)
# What a listed instance of an up machine must not be: failed, or stopped under the user (a
# spot loss; a user's stop goes through the machine's workflow first).
_LOST = (InstanceStatus.FAILED, InstanceStatus.STOPPED)


class ProviderFleet(ProviderLookup, Protocol):
    """What the reconciler needs of `providers.registry.ProviderRegistry`: every provider."""

    @property
    def names(self) -> list[str]: ...


class MachineNotifier(Protocol):
    """What the reconciler needs of `workflows.client.MachineClient`."""

    async def provider_event(self, machine_id: str, event: ProviderEvent) -> None: ...


class ReconcileActivities:
    def __init__(
        self,
        providers: ProviderFleet,
        engine: Engine,
        *,
        grace_seconds: int = 600,
        policy: OrphanPolicy = "destroy",
        machines: MachineNotifier | None = None,
    ) -> None:
        self._providers = providers
        self._machines = machines
        self._engine = engine
        self._grace = max(timedelta(seconds=grace_seconds), CREATE_TIMEOUT)
        self._policy = policy

    @activity.defn(name=ActivityName.RECONCILE_INSTANCES)
    async def reconcile_instances(self, tick: MonitorTick) -> ReconcileResult:
        result = ReconcileResult()
        async with heartbeating():
            for name in self._providers.names:
                provider = self._providers.get(name)
                listing_from = datetime.now(UTC)
                try:
                    listed = await provider.find_by_label(LABEL_PREFIX)
                except ProviderError as exc:  # the next pass tries again
                    activity.logger.warning("reconcile: cannot list %s: %s", name, exc)
                    result.failed_providers.append(name)
                    continue
                live = [i for i in listed if i.status is not InstanceStatus.GONE]
                result.listed += len(live)
                await self._judge(provider, live, tick.now, result)
                await self._tell_vanished(name, live, listing_from, result)
        return result

    async def _tell_vanished(
        self,
        provider: str,
        live: list[ProviderInstance],
        listing_from: datetime,
        result: ReconcileResult,
    ) -> None:
        if self._machines is None:
            return
        found = await asyncio.to_thread(_vanished, self._engine, provider, live, listing_from)
        for machine_id, event in found:
            try:
                await self._machines.provider_event(machine_id, event)
            except (MachineNotFound, MachineDestroyed):
                continue
            except RPCError as exc:
                activity.logger.warning("reconcile: cannot tell %s: %s", machine_id, exc.message)
                continue
            activity.logger.warning(
                "reconcile: machine %s: instance %s %s",
                machine_id,
                event.instance_id,
                event.detail,
            )
            result.vanished += 1

    async def _judge(
        self,
        provider: Provider,
        live: list[ProviderInstance],
        now: datetime,
        result: ReconcileResult,
    ) -> None:
        labelled = {i.instance_id: i for i in live if _owner_of(i.label) is not None}
        orphans = await asyncio.to_thread(self._record, provider.name, labelled, now)
        result.orphans += len(orphans)
        for instance, first_seen, is_new in orphans:
            result.new_orphans += is_new
            if self._policy != "destroy" or not instance.installation_marked:
                continue
            if now - first_seen < self._grace:
                continue
            try:
                await provider.destroy_instance(instance.instance_id)
            except ProviderError as exc:
                activity.logger.warning(
                    "reconcile: orphan %s on %s not destroyed (next pass): %s",
                    instance.instance_id,
                    provider.name,
                    exc,
                )
                continue
            activity.logger.warning(
                "reconcile: destroyed orphan %s on %s (%s, an orphan since %s)",
                instance.instance_id,
                provider.name,
                instance.label,
                first_seen.isoformat(),
            )
            await asyncio.to_thread(self._destroyed, provider.name, instance.instance_id, now)
            result.destroyed += 1

    def _record(
        self, provider: str, labelled: dict[str, ProviderInstance], now: datetime
    ) -> list[tuple[ProviderInstance, datetime, bool]]:
        """The orphans among `labelled`, each with when it was first seen and whether that is
        now; rows of instances that are owned again or gone are dropped."""
        with session_scope(self._engine) as session:
            machines = _machines(session, [_owner_of(i.label) for i in labelled.values()])
            standbys = _standbys(session, list(machines))
            rows = {
                row.instance_id: row
                for row in session.exec(
                    select(OrphanInstance).where(OrphanInstance.provider == provider)
                )
            }
            found: list[tuple[ProviderInstance, datetime, bool]] = []
            for instance in labelled.values():
                machine_id = _owner_of(instance.label)
                machine = machines.get(machine_id or "")
                if machine_of_label(instance.label) is not None:
                    reason = why_orphan(provider, instance.instance_id, instance.label, machine)
                else:
                    owner = (
                        StandbyRow(machine=machine, instance_id=standbys.get(machine.id))
                        if machine is not None
                        else None
                    )
                    reason = why_standby_orphan(instance.instance_id, instance.label, owner)
                row = rows.pop(instance.instance_id, None)
                if reason is None:
                    if row is not None:
                        session.delete(row)  # owned again (its record was late)
                    continue
                if row is None or row.destroyed_at is not None:
                    row = OrphanInstance(
                        provider=provider,
                        instance_id=instance.instance_id,
                        label=instance.label or "",
                        machine_id=machine_id,
                        reason=reason,
                        price_per_hour=instance.price_per_hour or None,
                        first_seen_at=now,
                    )
                    session.merge(row)
                    activity.logger.warning(
                        "reconcile: orphan instance %s on %s (%s, $%.3f/h): %s",
                        instance.instance_id,
                        provider,
                        instance.label,
                        instance.price_per_hour,
                        reason,
                    )
                    found.append((instance, now, True))
                else:
                    found.append((instance, row.first_seen_at, False))
            for gone in rows.values():  # no longer listed: gone, by us or anyone
                if gone.destroyed_at is None:
                    session.delete(gone)  # (a row of ours that destroyed it stays, a record)
            session.commit()
        return found

    def _destroyed(self, provider: str, instance_id: str, now: datetime) -> None:
        with session_scope(self._engine) as session:
            row = session.get(OrphanInstance, (provider, instance_id))
            if row is not None:
                row.destroyed_at = now
                session.add(row)
                session.commit()


def _vanished(
    engine: Engine, provider: str, live: list[ProviderInstance], listing_from: datetime
) -> list[tuple[str, ProviderEvent]]:
    """Up machines on `provider` whose instance is not in the listing, or is listed failed
    or interrupted. A row changed since the listing began may name an instance the listing
    could not have seen: it is judged on the next pass."""
    listed = {i.instance_id: i for i in live}
    found: list[tuple[str, ProviderEvent]] = []
    with Session(engine) as session:
        rows = session.exec(
            select(Machine).where(
                Machine.provider == provider,
                col(Machine.status).in_([s.value for s in _WATCHED]),
                col(Machine.instance_id).is_not(None),
            )
        )
        for machine in rows:
            updated = machine.updated_at
            if updated.tzinfo is None:
                updated = updated.replace(tzinfo=UTC)
            if updated >= listing_from or machine.instance_id is None:
                continue
            instance = listed.get(machine.instance_id)
            if instance is None:
                status, detail = InstanceStatus.GONE, "no longer listed by the provider"
            elif instance.interrupted or instance.status in _LOST:
                status = instance.status
                detail = "interrupted" if instance.interrupted else instance.status.value
            else:
                continue
            found.append(
                (
                    machine.id,
                    ProviderEvent(
                        instance_id=machine.instance_id,
                        status=status,
                        at=datetime.now(UTC),
                        interrupted=instance.interrupted if instance else False,
                        detail=detail,
                    ),
                )
            )
        found.extend(_standbys_lost(session, provider, listed, listing_from))
    return found


def _standbys_lost(
    session: Session, provider: str, listed: dict[str, ProviderInstance], listing_from: datetime
) -> list[tuple[str, ProviderEvent]]:
    """Standbys on `provider` that are gone or stopped (a preempted spot VM): their machines
    are told, and make a new one."""
    found: list[tuple[str, ProviderEvent]] = []
    rows = session.exec(
        select(MachineStandby).where(
            MachineStandby.instance_provider == provider,
            col(MachineStandby.instance_id).is_not(None),
        )
    )
    for row in rows:
        updated = row.updated_at
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)
        if updated >= listing_from or row.instance_id is None:
            continue
        instance = listed.get(row.instance_id)
        if instance is None:
            status, detail = InstanceStatus.GONE, "standby no longer listed by the provider"
        elif instance.interrupted or instance.status in _LOST:
            status = instance.status
            detail = "standby preempted" if instance.interrupted else f"standby {status.value}"
        else:
            continue
        event = ProviderEvent(
            instance_id=row.instance_id,
            status=status,
            at=datetime.now(UTC),
            interrupted=instance.interrupted if instance else False,
            detail=detail,
        )
        found.append((row.machine_id, event))
    return found


def _owner_of(label: str | None) -> str | None:
    """The machine a Dumont label belongs to: its own instance's, or its standby's."""
    return machine_of_label(label) or machine_of_standby_label(label)


def _standbys(session: Session, machine_ids: list[str]) -> dict[str, str | None]:
    """Machine id -> the standby instance its row names."""
    if not machine_ids:
        return {}
    rows = session.exec(
        select(MachineStandby).where(col(MachineStandby.machine_id).in_(machine_ids))
    )
    return {row.machine_id: row.instance_id for row in rows}


def _machines(session: Session, ids: list[str | None]) -> dict[str, MachineRow]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = session.exec(select(Machine).where(col(Machine.id).in_(wanted)))
    return {
        m.id: MachineRow(
            id=m.id, status=MachineState(m.status), provider=m.provider, instance_id=m.instance_id
        )
        for m in rows
    }
