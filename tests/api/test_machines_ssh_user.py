"""The machine's `ssh` line logs in as the user its instance takes: the provider's `ssh_user`
(GCE's metadata user), root for a row recorded before the column existed."""

from __future__ import annotations

from core.db import session_scope
from core.models import Machine
from tests.api.conftest import Api


def _machine(
    owner_id: str,
    machine_id: str,
    ssh_host: str | None = None,
    ssh_port: int | None = None,
    ssh_user: str | None = None,
) -> Machine:
    return Machine(
        id=machine_id,
        owner_id=owner_id,
        gpu_name="RTX 4090",
        image="ubuntu:22.04",
        disk_gb=20,
        status="running",
        ssh_host=ssh_host,
        ssh_port=ssh_port,
        ssh_user=ssh_user,
    )


async def test_the_ssh_line_names_the_machines_own_user(api_without_temporal: Api) -> None:
    api = api_without_temporal
    with session_scope(api.engine) as session:
        session.add(
            _machine(api.alice_id, "gce_a", ssh_host="203.0.113.7", ssh_port=22, ssh_user="dumont")
        )
        # Written before `ssh_user` existed: vast's root.
        session.add(_machine(api.alice_id, "vast_b", ssh_host="203.0.113.8", ssh_port=40022))
        session.add(_machine(api.alice_id, "vast_c"))  # no instance yet

    shown = {m["id"]: m for m in (await api.call("GET", "/api/v1/machines")).json()}
    assert shown["gce_a"]["ssh"] == "ssh -p 22 dumont@203.0.113.7"
    assert shown["gce_a"]["ssh_user"] == "dumont"
    assert shown["vast_b"]["ssh"] == "ssh -p 40022 root@203.0.113.8"
    assert shown["vast_b"]["ssh_user"] == "root"
    assert (shown["vast_c"]["ssh"], shown["vast_c"]["ssh_user"]) == (None, None)

    one = (await api.call("GET", "/api/v1/machines/gce_a")).json()
    assert one["ssh"] == "ssh -p 22 dumont@203.0.113.7"
