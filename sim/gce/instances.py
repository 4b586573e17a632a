"""The GCE instances and their lifecycle, each one a sandbox machine (machine.py).

insert: PROVISIONING -> STAGING -> RUNNING over the boot delay, its operation DONE at RUNNING;
stop: STOPPING -> TERMINATED (natIP released); start: TERMINATED -> PROVISIONING -> STAGING ->
RUNNING (a new natIP); delete: STOPPING -> gone. Every change is saved before it is answered,
and a restarted sim resumes what was under way and brings RUNNING machines back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sim.gce import errors, validation
from sim.gce.catalogue import region_of
from sim.gce.faults import GceFaults
from sim.gce.machine import GceMachines, default_ssh_port
from sim.gce.operations import Operations
from sim.gce.store import GceStore, InstanceRecord, OperationRecord
from sim.gce.views import fingerprint, instance_url

log = logging.getLogger(__name__)
PREEMPTED = "Instance was preempted."
# An operation's `error` and its httpErrorStatusCode.
Failure = tuple[dict[str, Any], int]


class GceCloud:
    def __init__(
        self,
        data_dir: Path,
        *,
        namespace: bool,
        boot_delay: Callable[[], float],
        stop_grace: float,
        ssh_port: int | None = None,
    ) -> None:
        self.root = data_dir / "gce"
        self.store = GceStore(self.root)
        self.state = self.store.load()
        self.ops = Operations(self.state, self.save)
        self.ssh_port = ssh_port or default_ssh_port()
        self.machines = GceMachines(
            self.root / "machines", namespace=namespace, ssh_port=self.ssh_port
        )
        self.faults = GceFaults()
        self.boot_delay = boot_delay
        self.stop_grace = stop_grace
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # ----- lookups

    def save(self) -> None:
        self.store.save(self.state)

    def find(self, project: str, zone: str, name: str) -> InstanceRecord | None:
        for record in self.state.instances.values():
            if (record.project, record.zone, record.name) == (project, zone, name):
                return record
        return None

    def get(self, project: str, zone: str, name: str) -> InstanceRecord:
        validation.check_zone(project, zone)
        record = self.find(project, zone, name)
        if record is None:
            raise errors.not_found(errors.resource(project, "zones", zone, "instances", name))
        return record

    def in_zone(self, project: str, zone: str) -> list[InstanceRecord]:
        return [r for r in self.state.instances.values() if (r.project, r.zone) == (project, zone)]

    def _op(self, record: InstanceRecord, kind: str, request_id: str | None) -> OperationRecord:
        return self.ops.create(
            record.project, record.zone, kind, instance_url(record), record.id, request_id
        )

    # ----- background transitions, one per instance at a time

    def _transition(self, record: InstanceRecord, coro: Coroutine[Any, Any, None]) -> None:
        self._cancel(record.id)
        task = asyncio.create_task(coro)
        self._tasks[record.id] = task
        task.add_done_callback(lambda done: self._transition_done(record.id, done))

    def _transition_done(self, instance_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(instance_id) is task:
            del self._tasks[instance_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("gce instance %s: transition failed", instance_id, exc_info=task.exception())

    def _cancel(self, instance_id: int) -> None:
        task = self._tasks.pop(instance_id, None)
        if task is not None:
            task.cancel()

    def _supersede(self, record: InstanceRecord) -> None:
        """Stop what the instance was doing; operations it leaves behind end DONE."""
        self._cancel(record.id)
        for op in self.ops.unfinished(record.id):
            self.ops.finish(op)

    async def _sleep_until(self, since: float, fraction: float) -> None:
        remaining = since + self.boot_delay() * fraction - asyncio.get_running_loop().time()
        if remaining > 0:
            await asyncio.sleep(remaining)

    # ----- insert, start: a boot

    async def insert(
        self, project: str, zone: str, body: Any, request_id: str | None
    ) -> OperationRecord:
        validation.check_zone(project, zone)
        if (replay := self.ops.find(project, zone, request_id)) is not None:
            return replay
        record = validation.new_instance(project, zone, body)
        if self.find(project, zone, record.name) is not None:
            path = errors.resource(project, "zones", zone, "instances", record.name)
            raise errors.already_exists(path)
        if (quota := self.faults.take_quota(zone, "sync")) is not None:
            raise errors.quota_exceeded(quota.metric, quota.limit, region_of(zone))
        record.metadata_fingerprint = fingerprint(record.metadata)
        self.state.instances[record.id] = record
        op = self._op(record, "insert", request_id)
        if self.faults.take_hang():
            return op  # a stuck operation: PROVISIONING and RUNNING for ever
        self._transition(record, self._boot(record, op, self._failure(record, insert=True)))
        return op

    async def start(
        self, project: str, zone: str, name: str, request_id: str | None
    ) -> OperationRecord:
        validation.check_zone(project, zone)
        if (replay := self.ops.find(project, zone, request_id)) is not None:
            return replay
        record = self.get(project, zone, name)
        if record.status == "STOPPING":
            raise errors.not_ready(errors.resource(project, "zones", zone, "instances", name))
        op = self._op(record, "start", request_id)
        if record.status != "TERMINATED":
            self.ops.finish(op)  # already up or on its way: nothing to do
            return op
        record.status = "PROVISIONING"
        self.save()
        self._transition(record, self._boot(record, op, self._failure(record, insert=False)))
        return op

    def _failure(self, record: InstanceRecord, *, insert: bool) -> Failure | None:
        """The error this boot's operation will end with (faults are drawn at request time)."""
        if (code := self.faults.take_stockout(record.zone)) is not None:
            error = errors.stockout_error(code, record.project, record.zone, record.machine_type)
            return error, 503
        if insert and (quota := self.faults.take_quota(record.zone, "operation")) is not None:
            return errors.quota_error(quota.metric, quota.limit, region_of(record.zone)), 403
        return None

    async def _boot(
        self,
        record: InstanceRecord,
        op: OperationRecord,
        failure: Failure | None,
    ) -> None:
        since = asyncio.get_running_loop().time()
        await self._sleep_until(since, 0.3)
        if failure is not None:
            if op.operation_type == "insert":
                del self.state.instances[record.id]  # a failed insert leaves no instance
                root = self.machines.layout(record.id).root
                self._spawn(asyncio.to_thread(shutil.rmtree, root, True))
            else:
                record.status = "TERMINATED"
            self.ops.finish(op, error=failure[0], http_status=failure[1])
            return
        record.status = "STAGING"
        op.progress = 40
        self.save()
        await self._sleep_until(since, 1.0)
        await self._bring_up(record)
        self.ops.finish(op)

    async def _bring_up(self, record: InstanceRecord, *, restored: bool = False) -> None:
        record.address = await self.machines.up(record, lambda: self.state.instances.get(record.id))
        record.status, record.status_message = "RUNNING", None
        if not restored:
            record.last_start_at = time.time()
        self.save()

    # ----- stop, delete: a shutdown

    async def stop(
        self, project: str, zone: str, name: str, request_id: str | None
    ) -> OperationRecord:
        validation.check_zone(project, zone)
        if (replay := self.ops.find(project, zone, request_id)) is not None:
            return replay
        record = self.get(project, zone, name)
        if record.status == "TERMINATED":
            op = self._op(record, "stop", request_id)
            self.ops.finish(op)
            return op
        self._supersede(record)
        op = self._op(record, "stop", request_id)
        record.status = "STOPPING"
        self.save()
        self._transition(record, self._shut_down(record, op, self.stop_grace, delete=False))
        return op

    async def delete(
        self, project: str, zone: str, name: str, request_id: str | None
    ) -> OperationRecord:
        validation.check_zone(project, zone)
        if (replay := self.ops.find(project, zone, request_id)) is not None:
            return replay
        record = self.get(project, zone, name)
        self._supersede(record)
        op = self._op(record, "delete", request_id)
        record.status = "STOPPING"
        self.save()
        self._transition(record, self._shut_down(record, op, self.stop_grace, delete=True))
        return op

    async def _shut_down(
        self, record: InstanceRecord, op: OperationRecord | None, grace: float, *, delete: bool
    ) -> None:
        await self.machines.down(record.id, grace)
        if delete:
            self.state.instances.pop(record.id, None)
            self.save()
            await asyncio.to_thread(shutil.rmtree, self.machines.layout(record.id).root, True)
        else:
            record.status, record.address = "TERMINATED", None
            record.last_stop_at = time.time()
            self.save()
        if op is not None:
            self.ops.finish(op)

    # ----- labels and metadata

    def set_labels(
        self, project: str, zone: str, name: str, body: Any, request_id: str | None
    ) -> OperationRecord:
        validation.check_zone(project, zone)
        if (replay := self.ops.find(project, zone, request_id)) is not None:
            return replay
        record = self.get(project, zone, name)
        given = body.get("labelFingerprint") if isinstance(body, dict) else None
        if given != fingerprint(record.labels):
            raise errors.condition_not_met(
                "Labels fingerprint either invalid or resource labels have changed"
            )
        record.labels = validation.check_labels(body.get("labels"))
        op = self._op(record, "setLabels", request_id)
        self.ops.finish(op)
        return op

    def set_metadata(
        self, project: str, zone: str, name: str, body: Any, request_id: str | None
    ) -> OperationRecord:
        validation.check_zone(project, zone)
        if (replay := self.ops.find(project, zone, request_id)) is not None:
            return replay
        record = self.get(project, zone, name)
        given = body.get("fingerprint") if isinstance(body, dict) else None
        if given != record.metadata_fingerprint:
            raise errors.condition_not_met(
                "Supplied fingerprint does not match current metadata fingerprint."
            )
        record.metadata = validation.metadata_items(body)
        # A fresh fingerprint on every set, so a writer holding the old one gets 412.
        record.metadata_fingerprint = fingerprint(
            {"items": record.metadata, "set": secrets.token_hex(4)}
        )
        if self.machines.running(record.id):
            self.machines.prepare(record)  # new users' homes; keys apply at the next login
        op = self._op(record, "setMetadata", request_id)
        self.ops.finish(op)
        return op

    # ----- faults

    async def preempt(self, project: str, zone: str, name: str) -> OperationRecord:
        """A Spot VM reclaimed: processes killed at once, then TERMINATED or deleted."""
        record = self.get(project, zone, name)
        if not record.spot or record.status not in ("PROVISIONING", "STAGING", "RUNNING"):
            raise errors.GceError(
                409, "conflict", f"Instance '{name}' is not a running Spot VM ({record.status})"
            )
        self._supersede(record)
        delete = record.scheduling.get("instanceTerminationAction") == "DELETE"
        record.status = "STOPPING"
        self.save()
        await self._shut_down(record, None, 0, delete=delete)
        op = self.ops.create(
            project,
            zone,
            "compute.instances.preempted",
            instance_url(record),
            record.id,
            None,
            user="system",
            prefix="systemevent",
        )
        self.ops.finish(op, status_message=PREEMPTED)
        return op

    # ----- the sim starting and stopping

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def restore(self) -> None:
        """Bring RUNNING machines back (same natIP when free) and resume what was under way."""
        for record in list(self.state.instances.values()):
            pending = self.ops.unfinished(record.id)
            kinds = {op.operation_type: op for op in pending}
            if "delete" in kinds or "stop" in kinds:
                op = kinds.get("delete") or kinds["stop"]
                coro = self._shut_down(record, op, 0, delete="delete" in kinds)
                self._transition(record, coro)
            elif record.status in ("PROVISIONING", "STAGING") and pending:
                self._transition(record, self._boot(record, pending[0], None))
            elif record.status == "RUNNING":
                try:
                    await self._bring_up(record, restored=True)
                except OSError:
                    log.exception("gce instance %s did not come back", record.name)
                    record.status, record.address = "TERMINATED", None
                    self.save()
        for op in list(self.state.operations.values()):
            if op.status != "DONE" and op.target_id not in self.state.instances:
                self.ops.finish(op)

    async def shutdown(self) -> None:
        for instance_id in list(self._tasks):
            self._cancel(instance_id)
        for task in list(self._background):
            task.cancel()
        await self.machines.shutdown(self.stop_grace)
        self.save()
