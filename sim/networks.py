"""Which machines get their own network, and keeping it from their first boot to destroy.

A machine that declares TCP ports (`-p 8000:8000`) and no UDP ones gets a network namespace
with each declared port published on its own free host port (sim/sandbox/network.py) and the
host's loopback services reachable from inside (sim/sandbox/bridge.py). The others share the
host's network and publish each port on the same number, as does every machine when the sim
runs with `--network host` or cannot make namespaces. UDP stays on the host's network because
the packaged pasta forwards no UDP replies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from sim.config import Network
from sim.sandbox import network
from sim.sandbox.bridge import LoopbackBridge
from sim.sandbox.layout import MachineLayout
from sim.store import InstanceRecord, StateStore
from sim.views import declared_ports

log = logging.getLogger(__name__)

_START_ATTEMPTS = 3


class Networks:
    def __init__(self, data_dir: Path, mode: Network) -> None:
        self.data_dir = data_dir
        self.bridge = LoopbackBridge()
        self._available = False
        self._probing: threading.Thread | None = None
        if mode == "netns":
            self._probe()
            if not self._available:
                raise RuntimeError("network=netns asked for, but root, `ip netns` or pasta fails")
        elif mode == "auto":
            # The probe (a namespace and a pasta, ~70 ms) runs while the sim starts serving.
            self._probing = threading.Thread(target=self._probe, name="netns-probe", daemon=True)
            self._probing.start()

    def _probe(self) -> None:
        self._available = network.available()
        log.info("machines with ports get %s", "a netns" if self._available else "host network")
        if self._available:
            leaked = network.sweep_leaked()
            if leaked:
                log.info("deleted %d leaked network namespaces: %s", len(leaked), leaked)

    @property
    def enabled(self) -> bool:
        if self._probing is not None:
            self._probing.join()
            self._probing = None
        return self._available

    @property
    def mode(self) -> str:
        return "netns" if self.enabled else "host"

    def wants_netns(self, record: InstanceRecord) -> bool:
        declared = declared_ports(record.env)
        return self.enabled and bool(declared) and all(proto == "tcp" for _, proto in declared)

    def _layout(self, record: InstanceRecord) -> MachineLayout:
        return MachineLayout.for_instance(self.data_dir, record.id, False)

    def pasta_pid(self, record: InstanceRecord) -> int | None:
        if record.netns is None:
            return None
        return network.pasta_pid(record.netns, self._layout(record).pasta_pid_file)

    async def prepare(self, record: InstanceRecord) -> None:
        """The machine's namespace and pasta, made when missing (kept when still running, as
        after a kill -9 of the sim). Done as a boot begins, so the boot delay covers it. The
        caller saves the record."""
        if not self.wants_netns(record):
            if record.netns is not None:  # made under `--network netns`, now on the host's
                await self.remove(record)
            record.netns, record.host_ports = None, {}
            return
        if record.netns is None:
            record.netns = network.new_name()
        wanted = {f"{port}/tcp" for port, _ in declared_ports(record.env)}
        record.host_ports = {k: v for k, v in record.host_ports.items() if k in wanted}
        for key in sorted(wanted - set(record.host_ports)):
            record.host_ports[key] = network.free_port()
        if self.pasta_pid(record) is None:
            await self._start(record)

    async def up(self, record: InstanceRecord) -> str | None:
        """Before the machine's processes start: `prepare`, then the bridge. Returns the
        namespace's name, None for the host's network."""
        await self.prepare(record)
        if record.netns is None:
            return None
        container = {int(key.split("/")[0]) for key in record.host_ports}
        await self.bridge.attach(
            record.netns,
            network.netns_path(record.netns),
            container | set(record.host_ports.values()),
        )
        return record.netns

    async def _start(self, record: InstanceRecord) -> None:
        assert record.netns is not None
        layout = self._layout(record)
        for attempt in range(_START_ATTEMPTS):
            # A host port taken while pasta was down (or since it was picked) moves, as the
            # SSH port does.
            for key, port in record.host_ports.items():
                if not network.port_is_free(port):
                    record.host_ports[key] = network.free_port()
            ports = [
                network.PortMap(port, int(key.split("/")[0]))
                for key, port in sorted(record.host_ports.items())
            ]
            try:
                await network.start(record.netns, ports, layout.pasta_pid_file, layout.root)
                return
            except network.NetworkError:
                if attempt == _START_ATTEMPTS - 1:
                    raise
                log.warning("instance %s: pasta did not start, new ports", record.id)

    async def down(self, record: InstanceRecord) -> None:
        """The machine stopped: nothing inside needs the host's services. pasta stays."""
        if record.netns is not None:
            await self.bridge.detach(record.netns)

    async def remove(self, record: InstanceRecord) -> None:
        """Destroy: pasta ends (its host ports close) and the namespace is deleted."""
        if record.netns is None:
            return
        await self.bridge.detach(record.netns)
        try:
            await network.stop(record.netns, self._layout(record).pasta_pid_file)
        except OSError:  # the sweep of a later sim start deletes what is left
            log.exception("instance %s: network %s not removed", record.id, record.netns)

    async def shutdown(self, records: Iterable[InstanceRecord]) -> None:
        """A graceful stop of the sim: no pasta outlives it; a restart makes them again."""
        await self.bridge.close()
        for record in records:
            await self.remove(record)


def release_data_dir(data_dir: Path) -> None:
    """Every pasta and namespace of the machines under `data_dir`, gone (test clean-up once
    the sim has stopped, including one killed with -9)."""
    network.release_under(data_dir)
    store = StateStore(data_dir)
    if not store.path.exists():
        return
    for record in store.load(seed=0).instances.values():
        if record.netns and record.netns.startswith(network.PREFIX):
            network.delete_now(record.netns)
