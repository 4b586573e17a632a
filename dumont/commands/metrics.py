"""`dumont machines metrics`: how busy a machine was, as terminal charts or a PNG."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from dumont.client import DumontClient
from dumont.config import load_client_config
from dumont.output import console, fail, print_json, reports_errors
from dumont.png_chart import render_png
from dumont.series import parse_metrics
from dumont.term_chart import render_metrics

RangeName = Literal["24h", "7d", "30d"]
ALL_SERIES = "gpu,vram,cpu,ram,disk,net"


@reports_errors
def metrics(
    machine_id: Annotated[str, typer.Argument(help="Machine id.")],
    range_: Annotated[RangeName, typer.Option("--range", help="How far back.")] = "24h",
    series: Annotated[
        str, typer.Option(help="Comma-separated: gpu, vram, cpu, ram, disk, net.")
    ] = ALL_SERIES,
    png: Annotated[
        Path | None, typer.Option(help="Also write the charts to this PNG file.", dir_okay=False)
    ] = None,
    height: Annotated[int, typer.Option(min=2, max=40, help="Rows per chart.")] = 6,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """Charts of a machine's GPU, VRAM, CPU, RAM, disk and network over a range."""
    with DumontClient(load_client_config()) as client:
        body = client.machine_metrics(machine_id, range_, series)
    if as_json:
        print_json(body)
    parsed = parse_metrics(body, time.time())
    if png is not None:
        try:
            png.write_bytes(render_png(parsed))
        except OSError as exc:
            raise fail(f"cannot write {png}: {exc.strerror}") from None
    if not as_json:
        console.print(render_metrics(parsed, console.width, height))
        if png is not None:
            console.print(f"Wrote {png}", soft_wrap=True)
