"""vast.ai's JSON, both ways: the offer search body, and offers, instances and keys read back.

Pure functions, no I/O, so each wire detail is tested on its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.contracts.service import SSH_PORT, split_port
from core.contracts.states import InstanceStatus
from core.regions import countries_for
from providers.base import InvalidRequest, Offer, OfferQuery, ProviderInstance
from providers.vast.bids import bid_admits, interrupted, offer_data

PROVIDER_NAME = "vast"

# vast's API counts memory in MB (the SDK multiplies GB by 1000), so GB here is 1000 MB.
MB_PER_GB = 1000.0

# Disk (GB) priced into offers when the query does not say (the SDK's create default).
DEFAULT_DISK_GB = 10.0
# vast prices storage per GB and month of this many hours.
HOURS_PER_MONTH = 720.0

_ORDER: dict[str, tuple[str, str]] = {
    "price": ("dph_total", "asc"),
    "reliability": ("reliability", "desc"),
    "vram": ("gpu_ram", "desc"),
    "score": ("score", "desc"),
}

_PROVISIONING = {None, "", "created", "loading", "rebooting"}
# dstack's signal for a container that never started: "...: OCI runtime create failed: ...".
_ERROR_MSG = re.compile(r"\b(error|failed|failure)\b", re.IGNORECASE)


def normalize_gpu_name(name: str) -> str:
    """vast names use spaces ("RTX 4090"); the CLI lets users type underscores."""
    return " ".join(name.replace("_", " ").split())


def search_body(query: OfferQuery) -> dict[str, Any]:
    """The `POST /api/v0/bundles/` body for a query, shaped as the official SDK sends it.

    Plain numbers go as strings (the server coerces them, the SDK does the same); `gpu_ram` is
    in MB like the SDK's multiplied fields.
    """
    if query.limit < 1:
        raise InvalidRequest(f"offer search limit must be at least 1, got {query.limit}")
    field, direction = _ORDER[query.sort]
    body: dict[str, Any] = {
        "verified": {"eq": True},
        "external": {"eq": False},
        "rentable": {"eq": True},
        "rented": {"eq": False},
        "order": [[field, direction]],
        # A bid search prices each offer at its minimum bid (`min_bid`) instead.
        "type": "bid" if query.interruptible else "on-demand",
        "limit": query.limit,
        "allocated_storage": float(query.min_disk_gb or DEFAULT_DISK_GB),
    }
    if query.gpu_name:
        body["gpu_name"] = {"eq": normalize_gpu_name(query.gpu_name)}
    if query.num_gpus is not None:
        body["num_gpus"] = {"eq": str(query.num_gpus)}
    if query.max_price is not None:
        body["dph_total"] = {"lte": str(query.max_price)}
    if query.region:
        body["geolocation"] = {"in": sorted(region_countries(query.region))}
    if query.min_reliability is not None:
        body["reliability"] = {"gte": str(query.min_reliability)}
    if query.min_vram_gb is not None:
        body["gpu_ram"] = {"gte": float(query.min_vram_gb) * MB_PER_GB}
    if query.interruptible and query.bid_price is not None:
        body["min_bid"] = {"lte": str(query.bid_price)}
    return body


def region_countries(region: str) -> frozenset[str]:
    try:
        return countries_for(region)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def _float(row: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = row.get(key)
    if value is None or isinstance(value, bool):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _int(row: dict[str, Any], key: str, default: int = 0) -> int:
    return int(_float(row, key, float(default)))


def _str(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def country_of(geolocation: str | None) -> str:
    """ "Oslo, NO" -> "NO"; "" when vast gives no usable country code."""
    if not geolocation:
        return ""
    code = geolocation.strip()[-2:]
    return code.upper() if code.isalpha() else ""


def parse_offer(row: dict[str, Any]) -> Offer:
    geolocation = _str(row, "geolocation") or ""
    cores = _float(row, "cpu_cores")
    effective = _float(row, "cpu_cores_effective") or cores
    # vast reports the whole machine's RAM; a rental gets the share of its cores (gpuhunt's rule).
    ram_share = effective / cores if cores > 0 and effective > 0 else 1.0
    return Offer(
        offer_id=str(row["id"]),
        provider=PROVIDER_NAME,
        gpu_name=_str(row, "gpu_name") or "",
        num_gpus=_int(row, "num_gpus"),
        gpu_ram_gb=_float(row, "gpu_ram") / MB_PER_GB,
        price_per_hour=_float(row, "dph_total"),
        reliability=_float(row, "reliability", _float(row, "reliability2")),
        geolocation=geolocation,
        country=country_of(geolocation),
        disk_space_gb=_float(row, "disk_space"),
        cpu_cores=effective,
        cpu_ram_gb=_float(row, "cpu_ram") * ram_share / MB_PER_GB,
        inet_down_mbps=_float(row, "inet_down"),
        inet_up_mbps=_float(row, "inet_up"),
        provider_data=offer_data(row),
    )


def offer_matches(row: dict[str, Any], offer: Offer, query: OfferQuery) -> bool:
    """Re-check the query on what came back (as dstack does): a server that ignores a filter
    must not rent the user the wrong machine."""
    if row.get("rentable") is False or row.get("rented") is True:
        return False
    if (
        query.gpu_name
        and normalize_gpu_name(query.gpu_name).casefold() != offer.gpu_name.casefold()
    ):
        return False
    if query.num_gpus is not None and offer.num_gpus != query.num_gpus:
        return False
    if query.max_price is not None and offer.price_per_hour > query.max_price:
        return False
    if query.region and offer.country not in region_countries(query.region):
        return False
    if query.min_reliability is not None and offer.reliability < query.min_reliability:
        return False
    if query.min_vram_gb is not None and offer.gpu_ram_gb < query.min_vram_gb:
        return False
    if query.interruptible and not bid_admits(row, query.bid_price):
        return False
    return query.min_disk_gb is None or offer.disk_space_gb >= query.min_disk_gb


def sort_offers(offers: list[Offer], rows: dict[str, dict[str, Any]], query: OfferQuery) -> None:
    """Sort in place the way the query asked; the server's order is not trusted either."""
    if query.sort == "price":
        offers.sort(key=lambda o: o.price_per_hour)
    elif query.sort == "reliability":
        offers.sort(key=lambda o: o.reliability, reverse=True)
    elif query.sort == "vram":
        offers.sort(key=lambda o: o.gpu_ram_gb, reverse=True)
    else:
        offers.sort(key=lambda o: _float(rows[o.offer_id], "score"), reverse=True)


# vast.ai's message for a start that waits for the host's GPUs (the console shows "Scheduling").
_SCHEDULING = re.compile(r"\s*scheduling\b", re.IGNORECASE)


def normalize_status(row: dict[str, Any]) -> InstanceStatus:
    actual = _str(row, "actual_status")
    actual = actual.lower() if actual else None
    if _str(row, "cur_state") == "unloaded":
        return InstanceStatus.GONE  # destroy in progress
    if actual == "created" and _ERROR_MSG.search(_str(row, "status_msg") or ""):
        return InstanceStatus.FAILED
    if actual in _PROVISIONING:
        return InstanceStatus.PROVISIONING
    if actual == "running":
        return InstanceStatus.RUNNING
    if actual in ("stopped", "frozen"):
        if _str(row, "intended_status") == "running" and _SCHEDULING.match(
            _str(row, "status_msg") or ""
        ):
            return InstanceStatus.WAITING_FOR_HOST
        return InstanceStatus.STOPPED
    if actual == "exited":
        return InstanceStatus.FAILED
    if actual == "gone":
        return InstanceStatus.GONE
    # "unknown"/"offline" (host lost contact, may recover) and anything vast adds later.
    return InstanceStatus.UNKNOWN


def ssh_address(row: dict[str, Any]) -> tuple[str | None, int | None]:
    """Direct SSH (public IP + host port mapped to 22) when vast publishes it, else the proxy."""
    public_ip = _str(row, "public_ipaddr")
    ports = row.get("ports")
    if public_ip and isinstance(ports, dict):
        mappings = ports.get("22/tcp")
        if isinstance(mappings, list) and mappings and isinstance(mappings[0], dict):
            host_port = _int(mappings[0], "HostPort")
            if host_port > 0:
                return public_ip, host_port
    host = _str(row, "ssh_host")
    port = _int(row, "ssh_port")
    if host and port > 0:
        return host, port
    return None, None


def create_env(env: dict[str, str], ports: list[str]) -> dict[str, str]:
    """The create body's `env`: the variables, and one `{"-p 8000:8000": "1"}` entry per
    published port (`-p 53:53/udp` for UDP), as the vast.ai CLI turns `-p` flags into."""
    entries = dict(env)
    for declared in ports:
        number, protocol = split_port(declared)
        suffix = "" if protocol == "tcp" else f"/{protocol}"
        entries[f"-p {number}:{number}{suffix}"] = "1"
    return entries


def published_ports(row: dict[str, Any]) -> dict[str, str]:
    """Each published container port's public address, from the row's Docker-style `ports`
    (present only while running): `public_ipaddr` (stripped) and the first `HostPort`."""
    public_ip = _str(row, "public_ipaddr")
    ports = row.get("ports")
    if not public_ip or not isinstance(ports, dict):
        return {}
    found: dict[str, str] = {}
    for container, mappings in ports.items():
        if not isinstance(container, str) or container == f"{SSH_PORT}/tcp":
            continue
        if isinstance(mappings, list) and mappings and isinstance(mappings[0], dict):
            host_port = _int(mappings[0], "HostPort")
            if host_port > 0:
                found[container] = f"{public_ip}:{host_port}"
    return found


def disk_price_per_hour(row: dict[str, Any]) -> float | None:
    """The instance's storage price per hour: `storage_total_cost` when vast gives it, else
    `storage_cost` ($/GB/month) × `disk_space` / 720."""
    total = row.get("storage_total_cost")
    if isinstance(total, int | float) and not isinstance(total, bool) and total >= 0:
        return float(total)
    per_gb_month, disk_gb = _float(row, "storage_cost", -1.0), _float(row, "disk_space", -1.0)
    if per_gb_month < 0 or disk_gb < 0:
        return None
    return per_gb_month * disk_gb / HOURS_PER_MONTH


def parse_instance(row: dict[str, Any]) -> ProviderInstance:
    host, port = ssh_address(row)
    status, status_msg = normalize_status(row), _str(row, "status_msg")
    return ProviderInstance(
        instance_id=str(row["id"]),
        label=_str(row, "label"),
        status=status,
        raw_status=_str(row, "actual_status"),
        gpu_name=_str(row, "gpu_name") or "",
        num_gpus=_int(row, "num_gpus"),
        price_per_hour=_float(row, "dph_total"),
        geolocation=_str(row, "geolocation"),
        ssh_host=host,
        ssh_port=port,
        status_msg=status_msg,
        ports=published_ports(row),
        disk_price_per_hour=disk_price_per_hour(row),
        interrupted=interrupted(status, status_msg),
    )


def key_identity(public_key: str) -> str:
    """ "ssh-ed25519 AAAA... comment" -> "ssh-ed25519 AAAA...": comments do not make a new key."""
    return " ".join(public_key.split()[:2])


def account_keys(body: Any) -> list[str]:
    """Public keys from `GET /api/v0/ssh/`, whose envelope is not documented: a bare list, or a
    dict holding one under `ssh_keys`/`keys`, items being strings or objects with the key under
    `public_key`, `ssh_key` or `key`."""
    if isinstance(body, dict):
        body = next(
            (body[k] for k in ("ssh_keys", "keys", "results") if k in body), body.get("ssh_key")
        )
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            return [body]
    if not isinstance(body, list):
        return []
    keys: list[str] = []
    for item in body:
        if isinstance(item, str):
            keys.append(item)
        elif isinstance(item, dict):
            if item.get("deleted_at"):
                continue
            key = item.get("public_key") or item.get("ssh_key") or item.get("key")
            if isinstance(key, str):
                keys.append(key)
    return keys
