"""One running sim: its configuration, saved state, market, machines and injected faults."""

from __future__ import annotations

import logging

from sim.catalogue import build_catalogue
from sim.config import SimConfig
from sim.faults import Faults
from sim.gce.instances import GceCloud
from sim.machines import Machines
from sim.networks import Networks
from sim.ratelimit import RateLimiter
from sim.sandbox.processes import namespace_available
from sim.store import StateStore

log = logging.getLogger(__name__)


class Sim:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = StateStore(config.data_dir)
        self.state = self.store.load(config.seed)
        self.catalogue = build_catalogue(self.state.seed, config.offer_count)
        if config.isolation == "plain":
            self.namespace = False
        else:
            self.namespace = namespace_available()
            if config.isolation == "namespace" and not self.namespace:
                raise RuntimeError("isolation=namespace asked for, but `unshare -m` does not work")
        log.info("machines run %s", "in mount namespaces" if self.namespace else "in plain dirs")
        self.networks = Networks(config.data_dir.resolve(), config.network)
        self.machines = Machines(
            config.data_dir.resolve(),
            self.store,
            self.state,
            self.catalogue,
            self.networks,
            namespace=self.namespace,
            boot_delay=config.boot_delay,
            stop_grace=config.stop_grace,
        )
        self.gce = GceCloud(
            config.data_dir.resolve(),
            namespace=self.namespace,
            boot_delay=lambda: self.machines.boot_delay,
            stop_grace=config.stop_grace,
            ssh_port=config.gce_ssh_port,
        )
        self.faults = Faults()
        self.limiter = RateLimiter(config.rate_limit_scale) if config.rate_limit else None
        self.store.save(self.state)
