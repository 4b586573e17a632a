"""`dumont offers`: what the marketplace has right now."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from dumont.client import DumontClient
from dumont.config import load_client_config
from dumont.output import console, gpu_text, money, print_json, reports_errors, table

SortKey = Literal["price", "reliability", "vram", "score"]


@reports_errors
def offers(
    gpu: Annotated[str | None, typer.Option(help='GPU model, e.g. "RTX 4090".')] = None,
    max_price: Annotated[float | None, typer.Option(help="Most USD per hour.")] = None,
    region: Annotated[
        str | None, typer.Option(help="NA, SA, EU, AS, OC, AF or an ISO country code.")
    ] = None,
    min_reliability: Annotated[float | None, typer.Option(help="0..1.")] = None,
    min_vram: Annotated[float | None, typer.Option(help="GB of memory per GPU.")] = None,
    num_gpus: Annotated[int | None, typer.Option(help="GPUs per machine.")] = None,
    interruptible: Annotated[
        bool, typer.Option(help="Interruptible (bid) offers, priced at their minimum bid.")
    ] = False,
    sort: Annotated[SortKey, typer.Option(help="Order of the list.")] = "price",
    limit: Annotated[int, typer.Option(help="How many offers.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search GPU offers you could rent now."""
    params = {
        "gpu": gpu,
        "max_price": max_price,
        "region": region,
        "min_reliability": min_reliability,
        "min_vram_gb": min_vram,
        "num_gpus": num_gpus,
        "sort": sort,
        "limit": limit,
        "interruptible": interruptible or None,
    }
    with DumontClient(load_client_config()) as client:
        found = client.offers(params)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("No offer matches.")
        return
    # A bid offer's price is its minimum bid (and its disk): what a bid must at least be.
    price = "MIN BID $/H" if interruptible else "$/H"
    rows = table(
        "OFFER", "GPU", "VRAM", price, "RELIAB.", "LOCATION", "DISK", "CPU", "RAM",
        keep_whole=("OFFER", "VRAM", price, "RELIAB.", "DISK", "RAM"),
    )  # fmt: skip
    for offer in found:
        rows.add_row(
            offer["offer_id"],
            gpu_text(offer["gpu_name"], offer["num_gpus"]),
            f"{offer['gpu_ram_gb']:.0f} GB",
            money(offer["price_per_hour"]),
            f"{offer['reliability'] * 100:.1f}%",
            offer["geolocation"],
            f"{offer['disk_space_gb']:.0f} GB",
            f"{offer['cpu_cores']:g}",
            f"{offer['cpu_ram_gb']:.0f} GB",
        )
    console.print(rows)
