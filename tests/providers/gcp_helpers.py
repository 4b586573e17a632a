"""The GCP provider pointed at the sim's Compute Engine, and the requests it is tested with."""

from __future__ import annotations

import asyncssh
from google.auth.credentials import AnonymousCredentials

from core.contracts.machine import MachineKind
from providers.base import CreateRequest, OfferQuery
from providers.gcp import GcpProvider
from providers.gcp.compute import Compute
from providers.gcp.offers import catalogue_offers
from providers.retry import RetryPolicy
from tests.fixtures.sim import SimHandle

PROJECT = "dumont-test"
INSTALLATION = "itest0001"
FAST_RETRY = RetryPolicy(max_retries=3, initial_delay=0.05, max_delay=0.2)


def gcp_provider(
    sim: SimHandle,
    *,
    project: str = PROJECT,
    installation: str = INSTALLATION,
    retry: RetryPolicy = FAST_RETRY,
) -> GcpProvider:
    compute = Compute(project, AnonymousCredentials(), endpoint=sim.gce_url, retry=retry)
    return GcpProvider(compute, installation=installation, ssh_port=sim.gce_ssh_port)


def create_request(
    label: str,
    public_key: str,
    *,
    machine_type: str = "e2-small",
    zone: str = "us-central1-a",
    spot: bool = False,
    pinned: bool = False,
) -> CreateRequest:
    data = (
        {"machine_type": machine_type, "zone": zone} if pinned else {"machine_type": machine_type}
    )
    if spot:
        data["spot"] = "true"
    query = OfferQuery(kind=MachineKind.CPU, min_disk_gb=10, provider_data=data)
    offers = [o for o in catalogue_offers(query) if o.provider_data["zone"] == zone]
    offer = offers[0]
    return CreateRequest(
        offer_id=offer.offer_id,
        image="debian-12",
        disk_gb=10,
        label=label,
        ssh_keys=[public_key],
        provider_data=dict(offer.provider_data),
    )


async def ssh_run(host: str, port: int, user: str, key: asyncssh.SSHKey, command: str) -> str:
    async with asyncssh.connect(
        host,
        port,
        username=user,
        client_keys=[key],
        known_hosts=None,
        agent_path=None,
        config=None,
        connect_timeout=10,
    ) as conn:
        result = await conn.run(command, check=True, timeout=20)
    return str(result.stdout)
