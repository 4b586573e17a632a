"""The serverless bench's warm path: one small-response service reached directly, through nginx
as a reverse proxy, and through Dumont's gateway, under wrk at an offered rate and at
saturation; and the time to the first byte of a streamed response through each."""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from lifecycle import free_port

_NGINX_CONF = """
worker_processes 1;
daemon off;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    upstream service {{ server {upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
        }}
    }}
}}
"""

# wrk (4.x) has no fixed-rate mode: each connection waits `delay` ms after every answer, so
# the offered rate is connections / (delay + latency); the achieved rate is printed.
_PACED = "function delay() return {delay_ms} end\n"
_HEADERS = 'wrk.headers["{name}"] = "{value}"\n'


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


@contextmanager
def nginx_in_front_of(upstream: str) -> Iterator[str]:
    """nginx proxying to `upstream` (host:port) on a free port: its address."""
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is not installed (apt-get install nginx)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(dir=tmp, upstream=upstream, port=port))
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", tmp])
        try:
            _until_listening(port)
            yield f"127.0.0.1:{port}"
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)


def _until_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str,
    *,
    headers: dict[str, str],
    connections: int,
    seconds: int,
    rate: int | None = None,
) -> WrkResult:
    """wrk against `url`: paced to about `rate` req/s, or as fast as it goes (None)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    script = "".join(_HEADERS.format(name=k, value=v) for k, v in headers.items())
    if rate is not None:
        script += _PACED.format(delay_ms=max(1, round(1000 * connections / rate)))
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua.name]
        out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(rps, _ms(latency["50"]), _ms(latency["99"]), errors)


async def first_byte_ms(url: str, headers: dict[str, str], repeats: int = 30) -> float:
    """Median time from sending a request to the first byte of its streamed body."""
    times = []
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        for _ in range(repeats):
            started = time.perf_counter()
            async with http.stream("GET", url) as response:
                chunks = response.aiter_raw()
                await anext(chunks)
                times.append((time.perf_counter() - started) * 1000)
                async for _chunk in chunks:
                    pass
    return statistics.median(times)


async def warm_path(
    direct: str, gateway: str, headers: dict[str, str], *, rate: int, seconds: int
) -> dict[str, dict[str, WrkResult | float]]:
    """Each path at `rate` and at saturation, and its streamed first byte: name -> figures.
    `direct` is host:port; `gateway` the endpoint's base URL (ending in /)."""
    results: dict[str, dict[str, WrkResult | float]] = {}
    with nginx_in_front_of(direct) as nginx:
        paths = {
            "direct": (f"http://{direct}/", {}),
            "nginx": (f"http://{nginx}/", {}),
            "dumont gateway": (gateway, headers),
        }
        for name, (base, extra) in paths.items():
            figures: dict[str, WrkResult | float] = {}
            figures["paced"] = await asyncio.to_thread(
                wrk, base, headers=extra, connections=10, seconds=seconds, rate=rate
            )
            figures["saturation"] = await asyncio.to_thread(
                wrk, base, headers=extra, connections=32, seconds=seconds
            )
            figures["stream_first_byte_ms"] = await first_byte_ms(f"{base}stream", extra)
            results[name] = figures
    return results
