"""Rented instances and their lifecycle: boot, stop, start, reboot, destroy, and faults.

Status fields follow vast.ai: `actual_status` null -> loading -> running; stop leaves
"stopped" everywhere; a spot loss sets cur_state = intended_status = next_state = "stopped"
(dstack's detector); a start whose host was taken stays stopped with a "Scheduling" message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import shutil
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from sim import insides
from sim.catalogue import OfferSpec
from sim.errors import VastError, invalid_args, no_such_ask, no_such_instance
from sim.networks import Networks
from sim.sandbox import authorized, network, processes
from sim.sandbox.layout import MachineLayout
from sim.sandbox.ssh import MachineSSH, end_machine, normalise_public_key
from sim.store import InstanceRecord, SimState, SshKey, StateStore
from sim.views import machine_env

log = logging.getLogger(__name__)

BOOT_FAILURE = (
    "Error response from daemon: failed to create task for container: failed to create shim "
    "task: OCI runtime create failed: runc create failed: unable to start container process: "
    "error during container init: nvidia-container-cli: initialization error: driver error"
)
SCHEDULING = "Scheduling: waiting for the host's GPUs to become available"
# A destroyed machine's directory, renamed while it is wiped in the background.
DESTROYED_SUFFIX = ".destroyed-"
PREEMPTED = "Instance was interrupted: its GPUs were rented by a higher priority contract"
MAX_LABEL_CREATE = 256
MAX_LABEL = 1024
MIN_DISK_GB = 1.0


class Machines:
    """The one owner of instance state; every change is saved before it is answered."""

    def __init__(
        self,
        data_dir: Path,
        store: StateStore,
        state: SimState,
        catalogue: dict[int, OfferSpec],
        networks: Networks,
        *,
        namespace: bool,
        boot_delay: float,
        stop_grace: float,
    ) -> None:
        self.data_dir = data_dir
        self.store = store
        self.state = state
        self.catalogue = catalogue
        self.networks = networks
        self.namespace = namespace
        self.boot_delay = boot_delay
        self._delay_changed = asyncio.Event()
        self.stop_grace = stop_grace
        self.failing_creates = 0
        self._ssh: dict[int, MachineSSH] = {}
        self._transitions: dict[int, asyncio.Task[None]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # ----- helpers

    def save(self) -> None:
        self.store.save(self.state)

    def layout(self, instance_id: int) -> MachineLayout:
        return MachineLayout.for_instance(self.data_dir, instance_id, self.namespace)

    def get(self, instance_id: int) -> InstanceRecord:
        record = self.state.instances.get(instance_id)
        if record is None:
            raise no_such_instance(instance_id)
        return record

    def _lock(self, instance_id: int) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _transition(self, instance_id: int, coro: Coroutine[Any, Any, None]) -> None:
        self._cancel_transition(instance_id)
        task = asyncio.create_task(coro)
        self._transitions[instance_id] = task
        task.add_done_callback(lambda done: self._transition_done(instance_id, done))

    def _transition_done(self, instance_id: int, task: asyncio.Task[None]) -> None:
        if self._transitions.get(instance_id) is task:
            del self._transitions[instance_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("instance %s: transition failed", instance_id, exc_info=task.exception())

    def _cancel_transition(self, instance_id: int) -> None:
        task = self._transitions.pop(instance_id, None)
        if task is not None:
            task.cancel()

    def pids(self, instance_id: int) -> list[int]:
        return processes.machine_pids(self.layout(instance_id))

    # ----- start-up and shut-down of the sim itself

    async def restore(self) -> None:
        """Bring back what was running before the sim stopped; resume interrupted boots."""
        machines_dir = self.data_dir / "machines"
        for leftover in machines_dir.glob(f"*{DESTROYED_SUFFIX}*"):  # a wipe the sim outlived
            self._spawn(asyncio.to_thread(shutil.rmtree, leftover, True))
        for record in list(self.state.instances.values()):
            if record.actual_status == "running":
                alive = bool(self.pids(record.id))
                # Machines whose processes died with the sim boot again, onstart included.
                try:
                    await self._bring_up(record, run_onstart=not alive)
                except OSError as exc:
                    log.exception("instance %s did not come back", record.id)
                    record.actual_status, record.status_msg = "exited", f"host error: {exc}"
                    self.save()
            elif record.intended_status == "running" and record.actual_status in (
                None,
                "created",
                "loading",
                "rebooting",
            ):
                self._transition(
                    record.id, self._boot(record.id, fresh=record.actual_status is None)
                )

    async def shutdown(self) -> None:
        for instance_id in list(self._transitions):
            self._cancel_transition(instance_id)
        for task in list(self._background):
            task.cancel()
        for instance_id in list(self._ssh):
            await self._bring_down(instance_id, self.stop_grace)
        await self.networks.shutdown(list(self.state.instances.values()))
        self.save()

    # ----- create

    def create(self, offer_id: int, body: dict[str, Any]) -> InstanceRecord:
        spec = self.catalogue.get(offer_id)
        if spec is None or offer_id in self.state.rented_offers():
            raise no_such_ask(offer_id)
        image = body.get("image") or body.get("template_hash_id")
        if not image or not isinstance(image, str):
            raise invalid_args("error 400/3467: image is required", ask_id=offer_id)
        label = body.get("label")
        if label is not None and len(str(label)) > MAX_LABEL_CREATE:
            raise VastError(400, "label_too_long", f"label exceeds {MAX_LABEL_CREATE} characters")
        disk = _number(body.get("disk"), 10.0, "disk")
        if disk < MIN_DISK_GB or disk > float(spec.fields["disk_space"]):
            raise invalid_args(
                f"error 400/3467: disk {disk} GB is outside 1..{spec.fields['disk_space']} GB",
                ask_id=offer_id,
            )
        env = body.get("env") or {}
        if not isinstance(env, dict):
            raise invalid_args("env must be an object of strings", ask_id=offer_id)
        price = body.get("price")
        bid = None if price is None else _number(price, 0.0, "price")
        args = body.get("args")
        if args is not None and not (
            isinstance(args, list) and all(isinstance(a, str) for a in args)
        ):
            raise invalid_args("args must be a list of strings", ask_id=offer_id)

        instance_id = self.state.new_instance_id()
        record = InstanceRecord(
            id=instance_id,
            offer_id=offer_id,
            offer=dict(spec.fields),
            image=image,
            label=None if label is None else str(label),
            env={str(k): str(v) for k, v in env.items()},
            onstart=body.get("onstart") or None,
            args=args,
            runtype=str(body.get("runtype") or ("args" if args else "ssh")),
            disk_gb=disk,
            bid_price=bid,
            api_key=secrets.token_hex(32),
            jupyter_token=secrets.token_hex(32),
            ssh_port=network.free_port(),
            ssh_keys=[key.model_copy() for key in self.state.account_keys],
            start_date=time.time(),
            fails_to_boot=self.failing_creates > 0,
        )
        if self.failing_creates > 0:
            self.failing_creates -= 1
        self.state.instances[instance_id] = record
        layout = self.layout(instance_id)
        layout.create()
        insides.write_gpu_file(layout, record)
        outbid = bid is not None and bid < spec.min_bid
        if outbid or body.get("target_state") == "stopped":
            # vast.ai creates an under-bid interruptible instance stopped (and says so).
            self._mark_stopped(record, PREEMPTED if outbid else None)
            self.save()
        else:
            self.save()
            self._transition(instance_id, self._boot(instance_id, fresh=True))
        return record

    # ----- lifecycle

    def set_boot_delay(self, seconds: float) -> None:
        """Applies to boots already under way too: a long delay holds them, a short one
        releases them."""
        self.boot_delay = seconds
        self._delay_changed.set()
        self._delay_changed = asyncio.Event()

    async def _boot_wait(self, since: float, fraction: float) -> None:
        """Sleep until `fraction` of the boot delay has passed since `since`."""
        loop = asyncio.get_running_loop()
        while (remaining := since + self.boot_delay * fraction - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._delay_changed.wait(), remaining)
            except TimeoutError:
                return

    async def _boot(self, instance_id: int, *, fresh: bool) -> None:
        record = self.get(instance_id)
        since = asyncio.get_running_loop().time()
        if fresh:
            record.actual_status, record.status_msg = None, None
            self.save()
        try:
            # Its network is made while the boot delay runs; _bring_up finds it ready.
            if not record.fails_to_boot:
                await self.networks.prepare(record)
                self.save()
            if fresh:
                await self._boot_wait(since, 0.25)
                record.actual_status = "loading"
                record.status_msg = f"Pulling image {record.image}"
                self.save()
            await self._boot_wait(since, 1.0)
            if record.fails_to_boot:
                record.actual_status, record.status_msg = "exited", BOOT_FAILURE
                record.running_since = None
                self.save()
                return
            await self._bring_up(record, run_onstart=True)
        except OSError as exc:  # the host could not set the machine up (its network)
            log.exception("instance %s did not boot", instance_id)
            record.actual_status, record.status_msg = "exited", f"host error: {exc}"
            self.save()

    async def _bring_up(self, record: InstanceRecord, *, run_onstart: bool) -> None:
        layout = self.layout(record.id)
        layout.create()
        insides.write_authorized_keys(layout, record)
        insides.write_gpu_file(layout, record)
        # Its network first: every process of the machine starts inside it.
        layout = dataclasses.replace(layout, netns=await self.networks.up(record))
        self.save()
        # Root may add keys of its own (with options) to the file the attached keys are in.
        root_keys = layout.home / ".ssh" / "authorized_keys"
        server = MachineSSH(
            layout,
            lambda: self._env(record),
            lambda: self._authorized(record),
            user_keys=lambda user: authorized.load(root_keys) if user == "root" else None,
        )
        # Registered before it listens, so a destroy that interrupts this still closes it.
        self._ssh[record.id] = server
        try:
            record.ssh_port = await server.start(record.ssh_port)
        except OSError:
            log.warning("instance %s: port %s is taken, moving", record.id, record.ssh_port)
            record.ssh_port = await server.start(0)
        if run_onstart:
            onstart = await insides.run_onstart(layout, record, self._env(record))
            if onstart is not None:
                self._spawn(onstart.wait())
        record.actual_status = "running"
        record.cur_state = record.next_state = record.intended_status = "running"
        record.status_msg = f"success, running {record.image}/ssh"
        record.running_since = time.time()
        self.save()

    async def _bring_down(self, instance_id: int, grace: float) -> None:
        """End the machine: no new logins, every process gone, open sessions dropped."""
        await end_machine(self.layout(instance_id), self._ssh.pop(instance_id, None), grace)
        if (record := self.state.instances.get(instance_id)) is not None:
            await self.networks.down(record)

    def _mark_stopped(self, record: InstanceRecord, status_msg: str | None) -> None:
        record.actual_status = "stopped"
        record.intended_status = record.cur_state = record.next_state = "stopped"
        record.status_msg = status_msg
        record.running_since = None

    async def stop(self, instance_id: int) -> None:
        async with self._lock(instance_id):
            record = self.get(instance_id)
            self._cancel_transition(instance_id)
            record.intended_status = record.cur_state = record.next_state = "stopped"
            self.save()
            await self._bring_down(instance_id, self.stop_grace)
            self._mark_stopped(record, None)
            self.save()

    async def start(self, instance_id: int) -> None:
        async with self._lock(instance_id):
            record = self.get(instance_id)
            busy = instance_id in self._transitions or record.actual_status == "running"
            if busy:
                record.intended_status = "running"
                self.save()
                return
            record.intended_status = "running"
            if record.host_taken:
                record.status_msg = SCHEDULING
                self.save()
                return
            record.cur_state = record.next_state = "running"
            record.actual_status, record.status_msg = "loading", "Starting container"
            self.save()
            self._transition(instance_id, self._boot(instance_id, fresh=False))

    async def reboot(self, instance_id: int) -> None:
        async with self._lock(instance_id):
            record = self.get(instance_id)
            if record.actual_status != "running":
                raise invalid_args(f"Instance {instance_id} is not running")
            record.actual_status, record.status_msg = "rebooting", "Rebooting container"
            record.running_since = None
            self.save()
            await self._bring_down(instance_id, self.stop_grace)
            self._transition(instance_id, self._boot(instance_id, fresh=False))

    async def destroy(self, instance_id: int) -> None:
        async with self._lock(instance_id):
            self.get(instance_id)
            self._cancel_transition(instance_id)
            await self._bring_down(instance_id, self.stop_grace)
            await self.networks.remove(self.get(instance_id))
            del self.state.instances[instance_id]
            self.save()
            root = self.layout(instance_id).root
            # Out of the way at once, deleted in the background: vast.ai answers a destroy
            # without waiting for the disk to be wiped, and a big workspace takes seconds.
            doomed = root.with_name(f"{root.name}{DESTROYED_SUFFIX}{secrets.token_hex(4)}")
            try:
                root.rename(doomed)
            except OSError:
                doomed = root
            self._spawn(asyncio.to_thread(shutil.rmtree, doomed, True))
        self._locks.pop(instance_id, None)

    def set_label(self, instance_id: int, label: str | None) -> None:
        record = self.get(instance_id)
        if label is not None and len(label) > MAX_LABEL:
            raise VastError(400, "label_too_long", f"label exceeds {MAX_LABEL} characters")
        record.label = label
        self.save()

    # ----- faults (admin API)

    async def interrupt(self, instance_id: int) -> None:
        """A spot loss: everything killed at once, the instance left stopped by the host."""
        async with self._lock(instance_id):
            record = self.get(instance_id)
            if record.actual_status not in ("running", "loading", "rebooting", None):
                raise VastError(409, "invalid_state", f"Instance {instance_id} is not running")
            self._cancel_transition(instance_id)
            await self._bring_down(instance_id, 0)
            self._mark_stopped(record, PREEMPTED)
            self.save()

    def take_host(self, instance_id: int) -> None:
        record = self.get(instance_id)
        if record.actual_status not in ("stopped", "exited"):
            raise VastError(409, "invalid_state", f"Instance {instance_id} is not stopped")
        record.host_taken = True
        self.save()

    async def return_host(self, instance_id: int) -> None:
        """The host's GPUs are free again; a start that was waiting goes ahead."""
        record = self.get(instance_id)
        record.host_taken = False
        self.save()
        if record.intended_status == "running" and record.actual_status == "stopped":
            await self.start(instance_id)

    def set_gpu_load(self, instance_id: int, utilization: float, memory_used_mb: float) -> None:
        record = self.get(instance_id)
        record.gpu_utilization = utilization
        record.gpu_memory_used_mb = memory_used_mb
        self.save()
        insides.write_gpu_file(self.layout(instance_id), record)

    # ----- keys

    def attach_key(self, instance_id: int, public_key: object) -> SshKey:
        record = self.get(instance_id)
        key = _parse_key(public_key)
        existing = next((k for k in record.ssh_keys if k.public_key == key), None)
        if existing is not None:
            return existing
        attached = SshKey(id=self.state.new_key_id(), public_key=key, created_at=time.time())
        record.ssh_keys.append(attached)
        self.save()
        insides.write_authorized_keys(self.layout(record.id), record)
        return attached

    def detach_key(self, instance_id: int, key_id: int) -> None:
        record = self.get(instance_id)
        kept = [key for key in record.ssh_keys if key.id != key_id]
        if len(kept) == len(record.ssh_keys):
            raise VastError(404, "not_found", f"ssh key {key_id} is not attached to {instance_id}")
        record.ssh_keys = kept
        self.save()
        insides.write_authorized_keys(self.layout(record.id), record)

    def add_account_key(self, public_key: object) -> SshKey:
        key = _parse_key(public_key)
        existing = next((k for k in self.state.account_keys if k.public_key == key), None)
        if existing is not None:
            return existing
        added = SshKey(id=self.state.new_key_id(), public_key=key, created_at=time.time())
        self.state.account_keys.append(added)
        self.save()
        return added

    def delete_account_key(self, key_id: int) -> None:
        kept = [key for key in self.state.account_keys if key.id != key_id]
        if len(kept) == len(self.state.account_keys):
            raise VastError(404, "not_found", f"ssh key {key_id} not found")
        self.state.account_keys = kept
        self.save()

    # ----- the machine's insides

    def _env(self, record: InstanceRecord) -> dict[str, str]:
        layout = self.layout(record.id)
        return machine_env(record, layout.visible_workspace, str(layout.gpu_file), str(layout.home))

    def _authorized(self, record: InstanceRecord) -> set[str]:
        current = self.state.instances.get(record.id)
        return {key.public_key for key in current.ssh_keys} if current else set()


def _number(value: Any, default: float, name: str) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise invalid_args(f"{name} must be a number") from exc


def _parse_key(public_key: object) -> str:
    if not isinstance(public_key, str) or not public_key.strip():
        raise invalid_args("ssh_key is required")
    try:
        return normalise_public_key(public_key)
    except ValueError as exc:
        raise invalid_args(str(exc)) from exc
