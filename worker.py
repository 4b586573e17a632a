"""The Temporal worker: every workflow and activity of the machine lifecycle, and the fleet
monitor (started here if it is not running).

Run it with `python -m worker` (or `python worker.py`); it reads `DUMONT_*` settings, waits for
Temporal to come up, and stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.worker import Worker

from activities.agent_install import AgentInstallActivities
from activities.alerts import AlertActivities
from activities.monitor import MonitorActivities
from activities.policy import PolicyActivities
from activities.pre_hibernate import PreHibernateActivities
from activities.provider import ProviderActivities
from activities.reconcile import ProviderFleet, ReconcileActivities
from activities.records import RecordActivities
from activities.schedule_trigger import ScheduleTriggerActivities
from activities.service import ServiceActivities
from activities.snapshots import SnapshotActivities
from activities.standby import StandbyActivities
from core.contracts.monitor import FLEET_MONITOR_WORKFLOW_ID, MonitorInput
from core.db import make_engine, migrate
from core.installation import with_installation
from core.offers.reservations import OfferReservations
from core.policies import lifecycle_policy
from core.settings import Settings
from core.snapshots.policy import SnapshotPolicy
from core.snapshots.store import ObjectStore, StoreError
from core.ssh import SshIdentity, ensure_identity
from providers.registry import ProviderRegistry
from workflows.client import MachineClient
from workflows.machine import MachineWorkflow
from workflows.monitor import FleetMonitorWorkflow
from workflows.schedule_trigger import ScheduleTriggerWorkflow

log = logging.getLogger("dumont.worker")

WORKFLOWS = [MachineWorkflow, FleetMonitorWorkflow, ScheduleTriggerWorkflow]

# Sync activities (database writes now, boto3 / google-cloud later) run in threads.
MAX_CONCURRENT_ACTIVITIES = 64
CONNECT_RETRY_SECONDS = 2.0


def worker_activities(
    client: Client,
    settings: Settings,
    *,
    providers: ProviderFleet,
    identity: SshIdentity,
    engine: Engine,
    store: ObjectStore,
) -> list[Callable[..., Any]]:
    """Every activity a Dumont worker runs (tests/test_activity_contracts.py checks this list
    against the activity names and what the workflows call)."""
    provider_activities = ProviderActivities(
        providers,
        identity,
        offers_per_attempt=settings.offers_per_attempt,
        poll_seconds=settings.provider_poll_seconds,
        reservations=OfferReservations(engine),
    )
    records = RecordActivities(engine)
    policy = PolicyActivities(lifecycle_policy(settings))
    agent = AgentInstallActivities(
        providers,
        identity,
        engine,
        api_url=settings.agent_api_url,
        interval_seconds=settings.agent_interval_seconds,
    )
    alerts = AlertActivities(engine)
    machines = MachineClient(client)
    monitor = MonitorActivities(engine, machines)
    snapshots = SnapshotActivities(engine, store, identity, SnapshotPolicy.from_settings(settings))
    hooks = PreHibernateActivities(identity)
    standby = StandbyActivities(providers, identity)
    reconcile = ReconcileActivities(
        providers,
        engine,
        grace_seconds=settings.orphan_grace_seconds,
        policy=settings.orphan_policy,
        machines=machines,
    )
    return [
        policy.lifecycle_policy,
        provider_activities.provision_instance,
        provider_activities.attach_ssh_keys,
        provider_activities.wait_until_ready,
        provider_activities.stop_instance,
        provider_activities.start_instance,
        provider_activities.reboot_instance,
        provider_activities.destroy_instances,
        records.record_batch,
        records.record_state,
        records.record_instance,
        records.record_instances_destroyed,
        records.record_config,
        records.owner_ssh_keys,
        hooks.run_pre_hibernate,
        ServiceActivities(identity).run_on_start,
        snapshots.snapshot_workspace,
        snapshots.restore_workspace,
        snapshots.collect_snapshot_garbage,
        agent.install_agent,
        standby.link_standby,
        standby.unlink_standby,
        standby.sync_now,
        standby.restore_from_standby,
        standby.check_instance,
        monitor.sweep_silent_agents,
        alerts.evaluate_alerts,
        alerts.deliver_webhooks,
        monitor.prune_metrics,
        reconcile.reconcile_instances,
        ScheduleTriggerActivities(machines).send_scheduled_action,
    ]


def build_worker(
    client: Client,
    settings: Settings,
    *,
    providers: ProviderFleet,
    identity: SshIdentity,
    engine: Engine,
    activity_executor: Executor,
    store: ObjectStore | None = None,
    **worker_options: Any,
) -> Worker:
    """A worker on `settings.task_queue` with every workflow and activity registered.

    `activity_executor` runs the sync activities; give it at least
    `MAX_CONCURRENT_ACTIVITIES` threads. `store` (default: from the settings) holds the
    snapshots.
    """
    activities = worker_activities(
        client,
        settings,
        providers=providers,
        identity=identity,
        engine=engine,
        store=store or ObjectStore.from_settings(settings),
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        activity_executor=activity_executor,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        graceful_shutdown_timeout=timedelta(seconds=10),
        **worker_options,
    )


async def ensure_fleet_monitor(client: Client, settings: Settings) -> None:
    """Start the fleet monitor unless it runs already (every worker asks; one monitor runs)."""
    await client.start_workflow(
        FleetMonitorWorkflow.run,
        MonitorInput(
            interval_seconds=settings.monitor_interval_seconds,
            reconcile_interval_seconds=settings.reconcile_interval_seconds,
        ),
        id=FLEET_MONITOR_WORKFLOW_ID,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


async def connect(settings: Settings, stop: asyncio.Event) -> Client | None:
    """Connect to Temporal, waiting (and saying so) while it is not up; None if told to stop."""
    while not stop.is_set():
        try:
            return await Client.connect(
                settings.temporal_address, namespace=settings.temporal_namespace
            )
        except RuntimeError as exc:  # the core SDK reports connection failures this way
            log.warning(
                "Temporal at %s is not reachable (%s); retrying in %.0f s",
                settings.temporal_address,
                exc,
                CONNECT_RETRY_SECONDS,
            )
            try:
                await asyncio.wait_for(stop.wait(), CONNECT_RETRY_SECONDS)
            except TimeoutError:
                pass
    return None


async def run(settings: Settings) -> None:
    identity = ensure_identity(settings.ssh_key_path)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    settings = with_installation(settings, engine)
    registry = ProviderRegistry.from_settings(settings)
    store = ObjectStore.from_settings(settings)
    try:
        await asyncio.to_thread(store.ensure_bucket)
    except StoreError as exc:  # hibernation fails safe (machines keep running) until it works
        log.warning("snapshot storage is not usable yet: %s", exc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        client = await connect(settings, stop)
        if client is None:
            return
        with ThreadPoolExecutor(MAX_CONCURRENT_ACTIVITIES) as executor:
            worker = build_worker(
                client,
                settings,
                providers=registry,
                identity=identity,
                engine=engine,
                activity_executor=executor,
                store=store,
            )
            async with worker:
                await ensure_fleet_monitor(client, settings)
                log.info(
                    "worker polling %r on %s (providers: %s)",
                    settings.task_queue,
                    settings.temporal_address,
                    ", ".join(registry.names) or "none",
                )
                await stop.wait()
                log.info("shutting down: finishing the activities in flight")
    finally:
        await registry.aclose()
        engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(Settings()))


if __name__ == "__main__":
    main()
