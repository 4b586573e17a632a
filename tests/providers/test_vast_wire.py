"""vast's JSON read and written: the search body, offers, statuses, SSH addresses, a service's
create env and its published addresses, the disk's price."""

from __future__ import annotations

import pytest

from core.contracts.states import InstanceStatus
from providers.base import InvalidRequest, OfferQuery
from providers.vast.wire import (
    create_env,
    normalize_status,
    parse_instance,
    parse_offer,
    search_body,
)


def test_search_body_is_shaped_like_the_sdk_sends_it():
    body = search_body(
        OfferQuery(
            gpu_name="RTX_4090",
            num_gpus=2,
            max_price=0.8,
            region="OC",
            min_reliability=0.95,
            min_vram_gb=24,
            min_disk_gb=40,
            sort="reliability",
            limit=7,
        )
    )
    assert body == {
        "verified": {"eq": True},
        "external": {"eq": False},
        "rentable": {"eq": True},
        "rented": {"eq": False},
        "order": [["reliability", "desc"]],
        "type": "on-demand",
        "limit": 7,
        "allocated_storage": 40.0,
        "gpu_name": {"eq": "RTX 4090"},
        "num_gpus": {"eq": "2"},
        "dph_total": {"lte": "0.8"},
        "geolocation": {"in": ["AU", "NZ"]},
        "reliability": {"gte": "0.95"},
        "gpu_ram": {"gte": 24000.0},
    }


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("price", ["dph_total", "asc"]),
        ("reliability", ["reliability", "desc"]),
        ("vram", ["gpu_ram", "desc"]),
        ("score", ["score", "desc"]),
    ],
)
def test_each_sort_maps_to_a_vast_order(sort, order):
    assert search_body(OfferQuery(sort=sort))["order"] == [order]


def test_a_country_code_is_a_region_of_one():
    assert search_body(OfferQuery(region="de"))["geolocation"] == {"in": ["DE"]}


def test_an_unknown_region_is_refused_not_searched():
    with pytest.raises(InvalidRequest, match="unknown region"):
        search_body(OfferQuery(region="Europe"))


def test_offer_units_are_converted_from_vast_mb():
    offer = parse_offer(
        {
            "id": 4242,
            "gpu_name": "RTX 4090",
            "num_gpus": 1,
            "gpu_ram": 24564,
            "dph_total": 0.41,
            "reliability": 0.99,
            "geolocation": "Oslo, NO",
            "disk_space": 120.5,
            "cpu_cores": 32,
            "cpu_cores_effective": 8.0,
            "cpu_ram": 128000,
            "inet_down": 900.0,
            "inet_up": 500.0,
        }
    )
    assert offer.offer_id == "4242"
    assert offer.provider == "vast"
    assert offer.country == "NO"
    assert offer.gpu_ram_gb == pytest.approx(24.564)
    assert offer.cpu_cores == 8.0
    assert offer.cpu_ram_gb == pytest.approx(32.0)  # a quarter of the cores, a quarter of the RAM
    assert offer.price_per_hour == 0.41


@pytest.mark.parametrize(
    ("row", "status"),
    [
        ({"actual_status": None}, InstanceStatus.PROVISIONING),
        ({"actual_status": "created"}, InstanceStatus.PROVISIONING),
        ({"actual_status": "loading"}, InstanceStatus.PROVISIONING),
        ({"actual_status": "rebooting"}, InstanceStatus.PROVISIONING),
        (
            {"actual_status": "created", "status_msg": "x: OCI runtime create failed: no gpu"},
            InstanceStatus.FAILED,
        ),
        ({"actual_status": "exited"}, InstanceStatus.FAILED),
        ({"actual_status": "running"}, InstanceStatus.RUNNING),
        ({"actual_status": "stopped"}, InstanceStatus.STOPPED),
        ({"actual_status": "unknown"}, InstanceStatus.UNKNOWN),
        ({"actual_status": "offline"}, InstanceStatus.UNKNOWN),
        ({"actual_status": "gone"}, InstanceStatus.GONE),
        ({"actual_status": "running", "cur_state": "unloaded"}, InstanceStatus.GONE),
    ],
)
def test_status_normalisation(row, status):
    assert normalize_status(row) is status


def test_direct_ssh_is_preferred_and_whitespace_stripped():
    instance = parse_instance(
        {
            "id": 7,
            "actual_status": "running",
            "public_ipaddr": " 203.0.113.9\n",
            "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40022"}]},
            "ssh_host": "ssh4.vast.ai",
            "ssh_port": 12345,
        }
    )
    assert (instance.ssh_host, instance.ssh_port) == ("203.0.113.9", 40022)


def test_proxy_ssh_when_no_port_is_published():
    instance = parse_instance(
        {"id": 7, "actual_status": "loading", "ssh_host": "ssh4.vast.ai", "ssh_port": 12345}
    )
    assert (instance.ssh_host, instance.ssh_port) == ("ssh4.vast.ai", 12345)
    assert instance.instance_id == "7"


def test_a_services_env_has_one_p_entry_per_port_as_the_vast_cli_sends_them():
    env = create_env({"MODEL": "llama"}, ["8000/tcp", "53/udp", "7860/tcp"])
    assert env == {
        "MODEL": "llama",
        "-p 8000:8000": "1",
        "-p 53:53/udp": "1",
        "-p 7860:7860": "1",
    }
    assert create_env({}, []) == {}


def test_published_ports_are_the_public_ip_and_host_port_of_each_but_ssh():
    instance = parse_instance(
        {
            "id": 7,
            "actual_status": "running",
            "public_ipaddr": " 203.0.113.9\n",
            "ports": {
                "22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40022"}],
                "8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41234"}],
                "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "41235"}],
                "9000/tcp": [],  # declared, not mapped (yet)
            },
        }
    )
    assert instance.ports == {"8000/tcp": "203.0.113.9:41234", "53/udp": "203.0.113.9:41235"}


def test_no_port_is_published_before_the_instance_runs():
    assert parse_instance({"id": 7, "actual_status": "loading"}).ports == {}
    assert parse_instance({"id": 7, "ports": {"8000/tcp": [{"HostPort": "1"}]}}).ports == {}


@pytest.mark.parametrize(
    ("row", "price"),
    [
        ({"storage_total_cost": 0.0125, "storage_cost": 0.3, "disk_space": 20}, 0.0125),
        ({"storage_cost": 0.18, "disk_space": 40}, 0.18 * 40 / 720),
        ({"storage_cost": 0.18}, None),
        ({}, None),
    ],
)
def test_the_disk_price_per_hour(row, price):
    assert parse_instance({"id": 7, **row}).disk_price_per_hour == pytest.approx(price)
