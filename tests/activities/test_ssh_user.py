"""A machine whose provider reports a login user other than root (GCE's `ssh-keys` metadata user)
is reached as that user by every activity: the readiness probe, the agent install, the
pre-hibernate hook, the snapshot and the restore. The machine is a real sim machine behind an
SSH gate that admits only `dumont` (tests/fixtures/ssh_gate.py), as such an instance refuses
root."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.testing import ActivityEnvironment

from activities.agent_install import AgentInstallActivities
from activities.pre_hibernate import PreHibernateActivities
from activities.provider import ProviderActivities
from activities.snapshots import SnapshotActivities
from core.contracts import instance_label
from core.contracts.activities import ProvisionInput, WaitReadyInput
from core.contracts.agent import InstallAgentInput
from core.contracts.hibernation import PreHibernateInput
from core.contracts.machine import InstanceInfo, MachineSpec
from core.contracts.snapshots import RestoreRequest, SnapshotRequest
from core.db import make_engine, migrate, session_scope
from core.models import Machine, User
from core.snapshots.policy import SnapshotPolicy
from core.ssh import SshIdentity
from providers.base import ProviderInstance
from providers.registry import ProviderRegistry
from tests.agent.helpers import eventually
from tests.agent.recording_server import RecordingServer
from tests.fixtures.s3 import running_s3
from tests.fixtures.sim import SimHandle
from tests.fixtures.ssh_gate import SshGate, ssh_gate

USER = "dumont"
SPEC = MachineSpec(gpu_name="RTX 4090", image="pytorch/pytorch", disk_gb=20, region="NA")


class BehindGate:
    """The vast provider, reporting its instances at the gate's address with the gate's login
    user, as a provider whose instances refuse root reports them."""

    def __init__(self, vast: object, gate: SshGate) -> None:
        self._vast = vast
        self._gate = gate

    def __getattr__(self, name: str) -> object:
        return getattr(self._vast, name)

    async def get_instance(self, instance_id: str) -> ProviderInstance | None:
        found: ProviderInstance | None = await self._vast.get_instance(instance_id)  # type: ignore[attr-defined]
        if found is None or not found.ssh_host:
            return found
        return replace(found, ssh_host="127.0.0.1", ssh_port=self._gate.port, ssh_user=USER)


@dataclass
class GatedMachine:
    machine_id: str
    info: InstanceInfo  # as provisioned: no address yet, the default user
    gate: SshGate
    registry: ProviderRegistry  # its provider reports it behind the gate
    visible_workspace: str


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'dumont.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def machine(
    cloud: SimHandle,
    registry: ProviderRegistry,
    provider_activities: ProviderActivities,
    identity: SshIdentity,
    db: Engine,
) -> AsyncIterator[GatedMachine]:
    machine_id = f"m{uuid.uuid4().hex[:8]}"
    info = await ActivityEnvironment().run(
        provider_activities.provision_instance,
        ProvisionInput(machine_id=machine_id, spec=SPEC, label=instance_label(machine_id, 1)),
    )
    running = await cloud.wait_for_status(int(info.instance_id), "running")
    paths = await cloud.admin.instance(int(info.instance_id))
    with session_scope(db) as session:
        session.add(User(id="alice", name="alice"))
        session.flush()
        session.add(
            Machine(id=machine_id, owner_id="alice", gpu_name="RTX 4090", image="x", disk_gb=20)
        )
    key = identity.load()
    async with ssh_gate(USER, key, int(running["ssh_port"]), key) as gate:
        gated = ProviderRegistry({"vast": BehindGate(registry.get("vast"), gate)})  # type: ignore[dict-item]
        yield GatedMachine(machine_id, info, gate, gated, paths["visible_workspace"])


async def ready(machine: GatedMachine, identity: SshIdentity, seconds: float = 30) -> InstanceInfo:
    acts = ProviderActivities(machine.registry, identity, poll_seconds=0.1, ssh_timeout_seconds=5)
    deadline = datetime.now(UTC) + timedelta(seconds=seconds)
    result = await ActivityEnvironment().run(
        acts.wait_until_ready, WaitReadyInput(instance=machine.info, deadline=deadline)
    )
    assert result.ready, result.detail
    return result.instance


async def test_readiness_is_probed_as_the_instances_user_and_carried_on(
    machine: GatedMachine, identity: SshIdentity
) -> None:
    assert machine.info.ssh_user == "root"  # what the workflow held before the instance ran
    info = await ready(machine, identity)
    assert (info.ssh_user, info.ssh_port) == (USER, machine.gate.port)
    assert USER in machine.gate.logins and "root" not in machine.gate.logins


async def test_the_gate_refuses_root_so_a_root_probe_never_gets_ready(
    machine: GatedMachine, identity: SshIdentity
) -> None:
    """The control: what every probe did before, against a machine that refuses root."""

    class AsRoot(BehindGate):
        async def get_instance(self, instance_id: str) -> ProviderInstance | None:
            found = await super().get_instance(instance_id)
            return replace(found, ssh_user="root") if found else None

    registry = ProviderRegistry({"vast": AsRoot(machine.registry.get("vast"), machine.gate)})  # type: ignore[dict-item]
    acts = ProviderActivities(registry, identity, poll_seconds=0.1, ssh_timeout_seconds=5)
    deadline = datetime.now(UTC) + timedelta(seconds=2)
    result = await ActivityEnvironment().run(
        acts.wait_until_ready, WaitReadyInput(instance=machine.info, deadline=deadline)
    )
    assert not result.ready and "not answering" in (result.detail or "")
    assert machine.gate.refused and set(machine.gate.refused) == {"root"}


async def test_the_agent_is_installed_as_the_instances_user(
    machine: GatedMachine, identity: SshIdentity, db: Engine, recorder: RecordingServer
) -> None:
    # The workflow's copy still says root: the install asks the provider, as it does for the
    # address.
    acts = AgentInstallActivities(
        machine.registry,
        identity,
        db,
        api_url=recorder.url,
        interval_seconds=1,
        workspace=machine.visible_workspace,
    )
    result = await ActivityEnvironment().run(
        acts.install_agent, InstallAgentInput(machine_id=machine.machine_id, instance=machine.info)
    )
    assert result.installed, result.detail
    assert machine.gate.logins == [USER]
    await eventually(lambda: recorder.reports)
    assert recorder.reports[-1]["instance_id"] == machine.machine_id


async def test_the_pre_hibernate_hook_snapshot_and_restore_log_in_as_the_instances_user(
    machine: GatedMachine, identity: SshIdentity, db: Engine, tmp_path: Path
) -> None:
    info = await ready(machine, identity)
    seen = len(machine.gate.logins)
    env = ActivityEnvironment()
    hook = await env.run(
        PreHibernateActivities(identity).run_pre_hibernate,
        PreHibernateInput(
            machine_id=machine.machine_id,
            instance=info,
            command="echo checkpoint > saved.txt && echo saved",
            timeout_seconds=30,
        ),
    )
    assert hook.ok and hook.output == "saved", hook.output

    with running_s3(tmp_path / "s3") as s3:
        snapshots = SnapshotActivities(db, s3.store(), identity, SnapshotPolicy(pack_mib=8))
        taken = await env.run(
            snapshots.snapshot_workspace,
            SnapshotRequest(
                snapshot_id=f"{machine.machine_id}-snap",
                owner_id="alice",
                machine_id=machine.machine_id,
                ssh_host="127.0.0.1",
                ssh_port=machine.gate.port,
                ssh_user=USER,
                workspace=machine.visible_workspace,
            ),
        )
        assert taken.snapshot_id == f"{machine.machine_id}-snap" and taken.files >= 1
        restored = await env.run(
            snapshots.restore_workspace,
            RestoreRequest(
                snapshot_id=taken.snapshot_id,
                owner_id="alice",
                ssh_host="127.0.0.1",
                ssh_port=machine.gate.port,
                ssh_user=USER,
                workspace=machine.visible_workspace,
            ),
        )
        assert (restored.root_hash, restored.files) == (taken.root_hash, taken.files)
    assert machine.gate.logins[seen:] == [USER, USER, USER]
    assert "root" not in machine.gate.refused
