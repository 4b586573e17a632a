"""Compression of chunks, with whatever the machine has: the `zstandard` module, else the `zstd`
command through pipes (for chunks big enough to pay for a process), else zlib. The codec is
recorded per chunk, so a snapshot may mix them and any machine that can decode them restores it.

Codecs: "raw" (stored as is: incompressible data), "zstd" (one zstd frame), "zlib".
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import threading
import zlib
from typing import Any, Sequence

RAW = "raw"
ZSTD = "zstd"
ZLIB = "zlib"

# Level 2: nearly level 3's ratio on text, a third less CPU (the engine shares the machine's cores
# with the walk, the hashing and the uploads).
ZSTD_LEVEL = 2
ZLIB_LEVEL = 1
# Below this a zstd process costs more than it saves; zlib takes those chunks.
CLI_MIN_CHUNK = 128 * 1024
# Data that shrinks less than this is stored raw: decompressing it would only cost time.
KEEP_RATIO = 0.97
_SAMPLE = 64 * 1024

_zstandard: Any
try:  # the fast path; conda-based images (pytorch, ...) ship it
    _zstandard = importlib.import_module("zstandard")
except ImportError:  # pragma: no cover - depends on the machine
    _zstandard = None


def zstd_command() -> str | None:
    return shutil.which("zstd")


def available_backends() -> list[str]:
    found = []
    if _zstandard is not None:
        found.append("zstandard")
    if zstd_command():
        found.append("zstd-cli")
    found.append("zlib")
    return found


def decodable() -> list[str]:
    """The codecs this machine can decompress."""
    codecs = [RAW, ZLIB]
    if _zstandard is not None or zstd_command():
        codecs.append(ZSTD)
    return codecs


class CodecError(RuntimeError):
    pass


def _looks_incompressible(data: bytes) -> bool:
    """A cheap zlib probe of one slice, so random data (media, archives, encrypted files) is
    stored without spending a compressor's time on it."""
    if len(data) < 2 * _SAMPLE:
        return False
    middle = len(data) // 2
    sample = data[middle : middle + _SAMPLE]
    return len(zlib.compress(sample, 1)) >= KEEP_RATIO * len(sample)


class Compressor:
    """Thread-safe: every thread gets its own zstd context."""

    def __init__(self, backend: str | None = None) -> None:
        backends = available_backends()
        chosen = backend or os.environ.get("DUMONT_SNAPSHOT_CODEC") or backends[0]
        if chosen not in backends:
            raise CodecError(f"codec backend {chosen!r} is not available here")
        self.backend = chosen
        self._local = threading.local()
        self._zstd = zstd_command()

    def _zstandard(self) -> Any:
        compressor = getattr(self._local, "zstd", None)
        if compressor is None:
            assert _zstandard is not None
            compressor = _zstandard.ZstdCompressor(level=ZSTD_LEVEL)
            self._local.zstd = compressor
        return compressor

    def _encode(self, data: bytes) -> tuple[str, bytes]:
        if self.backend == "zstandard":
            # No probe: zstd gives up on incompressible blocks at several GB/s by itself.
            return ZSTD, self._zstandard().compress(data)
        if _looks_incompressible(data):
            return RAW, data
        if self.backend == "zstd-cli" and len(data) >= CLI_MIN_CHUNK and self._zstd:
            out = subprocess.run(
                [self._zstd, f"-{ZSTD_LEVEL}", "-q", "-c", "--no-check"],
                input=data,
                capture_output=True,
                check=False,
            )
            if out.returncode != 0:
                raise CodecError("zstd failed: " + out.stderr.decode(errors="replace")[-500:])
            return ZSTD, out.stdout
        return ZLIB, zlib.compress(data, ZLIB_LEVEL)

    def compress(self, data: Any) -> tuple[str, Any]:
        """(codec, payload); raw when compression would not pay. `data` may be any buffer, and
        a raw payload is `data` itself (copy a view before reusing its buffer)."""
        if not data:
            return RAW, data
        codec, payload = self._encode(data)
        if codec != RAW and len(payload) >= KEEP_RATIO * len(data):
            return RAW, data
        return codec, payload


class Decompressor:
    def __init__(self) -> None:
        self._local = threading.local()
        self._zstd = zstd_command()

    def _zstandard(self) -> Any:
        decompressor = getattr(self._local, "zstd", None)
        if decompressor is None:
            assert _zstandard is not None
            decompressor = _zstandard.ZstdDecompressor()
            self._local.zstd = decompressor
        return decompressor

    def many(self, items: Sequence[tuple[str, bytes, int]]) -> list[bytes]:
        """Decompress (codec, payload, raw_size) items. Without the zstandard module, runs of zstd
        frames go through one `zstd -d` process together (frames concatenate) and are split by
        their known sizes. A wrong size or a corrupt frame raises CodecError."""
        out: list[bytes | None] = [None] * len(items)
        cli_run: list[int] = []
        for index, (codec, payload, size) in enumerate(items):
            if codec == RAW:
                out[index] = payload
            elif codec == ZLIB:
                try:
                    out[index] = zlib.decompress(payload)
                except zlib.error as exc:
                    raise CodecError(f"corrupt zlib chunk: {exc}") from None
            elif codec == ZSTD and _zstandard is not None:
                try:
                    out[index] = self._zstandard().decompress(payload, max_output_size=size)
                except _zstandard.ZstdError as exc:
                    raise CodecError(f"corrupt zstd chunk: {exc}") from None
            elif codec == ZSTD and self._zstd:
                cli_run.append(index)
            else:
                raise CodecError(f"this machine cannot decode {codec!r} chunks")
        if cli_run:
            self._cli(items, cli_run, out)
        for index, data in enumerate(out):
            if data is None or len(data) != items[index][2]:
                raise CodecError("a chunk decompressed to the wrong size")
        return [data for data in out if data is not None]

    def _cli(self, items: Sequence[tuple[str, bytes, int]], run: list[int], out: list[Any]) -> None:
        assert self._zstd
        result = subprocess.run(
            [self._zstd, "-d", "-q", "-c"],
            input=b"".join(items[i][1] for i in run),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise CodecError("corrupt zstd chunk: " + result.stderr.decode(errors="replace")[-300:])
        data = result.stdout
        if len(data) != sum(items[i][2] for i in run):
            raise CodecError("zstd chunks decompressed to the wrong size")
        offset = 0
        for index in run:
            size = items[index][2]
            out[index] = data[offset : offset + size]
            offset += size
