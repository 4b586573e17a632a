"""`dumont machines top` and `dumont machines metrics` against the real API, fed through the
real agent ingest route."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import sys
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dumont.png_chart import HEADER
from tests.cli.conftest import (
    CLEARED_ENV,
    REPO_ROOT,
    ApiUser,
    add_machine,
    agent_report,
    dumont,
    post_reports,
)

BLUE = bytes((31, 119, 180))  # the PNG chart's average line


def _busy_last_half_hour(user: ApiUser, machine_id: str) -> None:
    """An hour of reports, one a minute: 5 % GPU, then 90 % for the last 30 minutes."""
    now = datetime.now(UTC)
    reports = [
        agent_report(machine_id, now - timedelta(minutes=59 - i), 5.0 if i < 30 else 90.0)
        for i in range(60)
    ]
    post_reports(user, machine_id, reports)


def _row(output: str, machine_id: str) -> str:
    return next(line for line in output.splitlines() if machine_id in line)


def test_top_once_shows_each_machine_with_its_latest_report(api_user: ApiUser) -> None:
    busy = add_machine(api_user, name="trainer", price_per_hour=0.35)
    silent = add_machine(api_user, name="silent")
    stopped = add_machine(api_user, name="parked", status="stopped")
    _busy_last_half_hour(api_user, busy)

    result = dumont("machines", "top", "--once", env=api_user.env())

    assert result.exit_code == 0, result.output
    row = _row(result.stdout, busy)
    for shown in ("trainer", "running", "RTX 4090", "90%", "18.0 GB / 24.0 GB", "40%",
                  "20.0 GB / 64.0 GB", "12%", "s ago", "$0.350"):  # fmt: skip
        assert shown in row, (shown, row)
    # Running without a single report: its agent is silent.
    assert "offline" in _row(result.stdout, silent)
    assert "never" in _row(result.stdout, silent)
    parked = _row(result.stdout, stopped)
    assert "stopped" in parked and "offline" not in parked


def test_show_says_whether_the_agent_reports(api_user: ApiUser) -> None:
    busy = add_machine(api_user)
    silent = add_machine(api_user)
    _busy_last_half_hour(api_user, busy)

    shown = dumont("machines", "show", busy, env=api_user.env())
    never = dumont("machines", "show", silent, env=api_user.env())

    assert "online, reported" in shown.stdout and "90%" in _row(shown.stdout, "gpu util")
    assert "never reported" in never.stdout and "gpu util" not in never.stdout


def test_top_once_with_no_machines(api_user: ApiUser) -> None:
    result = dumont("machines", "top", "--once", env=api_user.env())

    assert result.exit_code == 0
    assert "No machines yet" in result.stdout


def _chart(output: str, label: str) -> list[str]:
    """The lines of one series' chart: its title, the bar rows and the axis."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(label))
    end = next(i for i in range(start + 1, len(lines)) if "└" in lines[i])
    return lines[start : end + 1]


def test_metrics_charts_show_when_the_machine_was_busy(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)
    _busy_last_half_hour(api_user, machine_id)

    result = dumont("machines", "metrics", machine_id, "--range", "24h", env=api_user.env())

    assert result.exit_code == 0, result.output
    assert "last 24 hours, 5 min buckets" in result.stdout
    gpu = _chart(result.stdout, "GPU utilisation")
    assert "now 90.0%" in gpu[0] and "min 5.0%" in gpu[0] and "max 90.0%" in gpu[0]
    axis = gpu[-1].split("└")[1]
    # Only the last hour of the 24 has reports: the axis is dotted before it.
    assert axis.startswith("·" * 100) and axis.endswith("─")
    top_row = gpu[1].split("┤")[1]
    assert top_row.strip() and set(top_row.strip()) <= set(" ▁▂▃▄▅▆▇█")
    assert top_row.startswith(" " * 100)  # nothing drawn where nothing was reported
    vram = _chart(result.stdout, "VRAM used")
    assert "now 18.0 GB" in vram[0] and "of 24.0 GB" in vram[0]
    assert "24 GB┤" in vram[1]  # scaled to the card's memory
    for label in ("CPU", "RAM used", "Disk used", "Network in", "Network out"):
        assert label in result.stdout


def test_metrics_of_a_machine_that_never_reported(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)

    result = dumont("machines", "metrics", machine_id, "--range", "7d", env=api_user.env())

    assert result.exit_code == 0, result.output
    assert "last 7 days" in result.stdout and "No reports in this range" in result.stdout


def test_metrics_refuses_an_unknown_series_with_the_servers_message(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)

    result = dumont("machines", "metrics", machine_id, "--series", "gpu,fan", env=api_user.env())

    assert result.exit_code == 1
    assert "fan" in result.stderr and "Traceback" not in result.output


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    return chunks


def test_metrics_png_is_a_valid_image_of_the_charts(api_user: ApiUser, tmp_path: Path) -> None:
    machine_id = add_machine(api_user)
    _busy_last_half_hour(api_user, machine_id)
    png = tmp_path / "gpu.png"

    result = dumont(
        "machines", "metrics", machine_id, "--series", "gpu,cpu", "--png", str(png),
        env=api_user.env(),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert f"Wrote {png}" in result.stdout
    chunks = _png_chunks(png.read_bytes())
    assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour_type) == (8, 2)  # 8-bit RGB
    assert width >= 800 and height >= 2 * 200  # one panel per series
    pixels = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + width * 3
    assert len(pixels) == height * stride
    rows = [pixels[y * stride + 1 : (y + 1) * stride] for y in range(height)]
    drawn = [
        x for row in rows[HEADER:] for x in range(width) if row[x * 3 : x * 3 + 3] == BLUE
    ]  # columns where the average line was drawn (the legend above the charts aside)
    # The line covers the last hour of 24, at the right: about 1/24 of the plot's width.
    assert drawn and min(drawn) > width * 0.9


def test_metrics_png_to_an_unwritable_place_fails_cleanly(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user)

    result = dumont(
        "machines", "metrics", machine_id, "--png", "/nonexistent/dir/x.png", env=api_user.env()
    )

    assert result.exit_code == 1
    assert "cannot write /nonexistent/dir/x.png" in result.stderr


async def _read_until(stream: asyncio.StreamReader, wanted: bytes, seen: bytearray) -> None:
    while wanted not in seen:
        chunk = await stream.read(65536)
        if not chunk:
            raise AssertionError(f"output ended before {wanted!r}: {seen[-2000:]!r}")
        seen += chunk


async def test_top_refreshes_in_place_until_ctrl_c(api_user: ApiUser) -> None:
    machine_id = add_machine(api_user, name="trainer")
    _busy_last_half_hour(api_user, machine_id)
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    # A terminal as far as rich can tell, so frames are redrawn as they would be on screen.
    env.update(DUMONT_API_URL=api_user.url, DUMONT_TOKEN=api_user.token, COLUMNS="200")
    env.update(TTY_COMPATIBLE="1", TTY_INTERACTIVE="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dumont", "machines", "top", "--interval", "0.5",
        cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    seen = bytearray()
    try:
        await asyncio.wait_for(_read_until(process.stdout, b" 90%", seen), 60)
        post_reports(api_user, machine_id, [agent_report(machine_id, datetime.now(UTC), 30.0)])
        await asyncio.wait_for(_read_until(process.stdout, b" 30%", seen), 60)
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    errors = await process.stderr.read()
    assert code == 0, errors.decode()
    assert b"Traceback" not in errors
    assert seen.count(machine_id.encode()) >= 2  # redrawn, not printed once
