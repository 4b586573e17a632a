"""A `via_ssh` route logs in as the machine's own user: the route read from the database carries
the machine's `ssh_user` (root for a row from before the column), a wake's pinned instance
carries its own, and the seam opens the tunnel as that user."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Engine

from api.gateway.routes import Route, load_route
from api.gateway.seams import SshTunnelSeam
from core.accounts import create_user
from core.contracts.machine import InstanceInfo
from core.contracts.states import MachineState
from core.db import session_scope
from core.models import Machine
from core.serverless.table import ServerlessEndpoint
from core.settings import Settings


def _serverless_machine(engine: Engine, machine_id: str, ssh_user: str | None) -> None:
    with session_scope(engine) as session:
        owner_id = create_user(session, f"owner-{machine_id}").id
        session.add(
            Machine(
                id=machine_id,
                owner_id=owner_id,
                gpu_name="RTX 4090",
                image="x",
                disk_gb=20,
                status="running",
                ssh_host="203.0.113.7",
                ssh_port=22,
                ssh_user=ssh_user,
            )
        )
        session.flush()
        session.add(
            ServerlessEndpoint(
                machine_id=machine_id,
                owner_id=owner_id,
                port="8000/tcp",
                via_ssh=True,
                key_hash="0" * 64,
                key_prefix="dsk_0000",
            )
        )


def test_the_route_carries_the_machines_ssh_user(engine: Engine) -> None:
    _serverless_machine(engine, "gce_a", "dumont")
    _serverless_machine(engine, "vast_b", None)  # recorded before the column: root
    route, older = load_route(engine, "gce_a"), load_route(engine, "vast_b")
    assert route is not None and older is not None
    assert (route.ssh_host, route.ssh_port, route.ssh_user) == ("203.0.113.7", 22, "dumont")
    assert older.ssh_user == "root"

    # A wake lands on another provider's instance: the pinned route takes its user.
    woke = InstanceInfo(
        provider="gce",
        instance_id="i-2",
        label="dumont-vast_b-2",
        offer_id="",
        gpu_name="L4",
        num_gpus=1,
        price_per_hour=0.7,
        ssh_host="198.51.100.2",
        ssh_port=22,
        ssh_user="dumont",
    )
    assert older.with_instance(MachineState.RUNNING, woke).ssh_user == "dumont"


class _Tunnels:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int, int, str]] = []

    async def address(
        self, machine_id: str, ssh_host: str, ssh_port: int, remote_port: int, *, user: str
    ) -> tuple[str, int]:
        self.asked.append((machine_id, ssh_host, ssh_port, remote_port, user))
        return "127.0.0.1", 50000


async def test_the_seam_opens_the_tunnel_as_the_routes_user(engine: Engine) -> None:
    _serverless_machine(engine, "gce_c", "dumont")
    route = load_route(engine, "gce_c")
    assert isinstance(route, Route)
    seam = SshTunnelSeam(Settings())
    tunnels = _Tunnels()
    seam._tunnels = tunnels  # type: ignore[assignment]
    assert await seam.local_address(route) == "127.0.0.1:50000"
    assert await seam.local_address(replace(route, ssh_user="ubuntu")) == "127.0.0.1:50000"
    assert [asked[-1] for asked in tunnels.asked] == ["dumont", "ubuntu"]
