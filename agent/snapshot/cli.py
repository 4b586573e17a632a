"""python3 -m agent.snapshot create|restore --workspace DIR (driven over stdin/stdout)."""

from __future__ import annotations

import argparse
import os
import sys

from agent.snapshot.codec import CodecError, Compressor
from agent.snapshot.create import CreateEngine
from agent.snapshot.restore import RestoreEngine
from agent.snapshot.statcache import StatCache, default_location
from agent.snapshot.wire import Wire

MiB = 1024 * 1024


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m agent.snapshot")
    parser.add_argument("mode", choices=("create", "restore"))
    parser.add_argument("--workspace", default="/workspace")
    parser.add_argument("--cache", help="stat cache file (default: ~/.cache/dumont-snapshot)")
    parser.add_argument("--no-cache", action="store_true", help="read every file again")
    parser.add_argument("--codec", help="zstandard, zstd-cli or zlib (default: the best here)")
    parser.add_argument("--workers", type=int, default=0, help="compress/verify threads")
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument("--pack-mib", type=int, default=16)
    parser.add_argument("--window-mib", type=int, default=256)
    return parser


def _keep_big_buffers() -> None:
    """Serve the engine's large, short-lived buffers (chunks, packs, reads) from the heap and
    keep it grown: by default glibc maps and unmaps each one, and the page faults that follow
    cost more than the hashing. The processes forked later inherit this."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 * MiB)  # M_MMAP_THRESHOLD: the most glibc accepts
        libc.mallopt(-1, 512 * MiB)  # M_TRIM_THRESHOLD
        libc.mallopt(-2, 64 * MiB)  # M_TOP_PAD
    except (OSError, AttributeError):  # not glibc: only slower
        pass


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.mode == "create":
        _keep_big_buffers()
    wire = Wire()
    workers = args.workers or max(2, min(8, os.cpu_count() or 2))
    cache = StatCache(None if args.no_cache else (args.cache or default_location(args.workspace)))
    if args.mode == "restore":
        restorer = RestoreEngine(
            args.workspace, wire, cache, workers=workers + 2, control_fd=sys.stdin.fileno()
        )
        return restorer.run()
    if not os.path.isdir(args.workspace):
        wire.send("error", message=f"{args.workspace} is not a directory")
        return 1
    try:
        compressor = Compressor(args.codec)
    except CodecError as exc:
        wire.send("error", message=str(exc))
        return 1
    engine = CreateEngine(
        args.workspace,
        wire,
        cache,
        compressor,
        workers=workers,
        uploaders=args.uploaders,
        pack_size=args.pack_mib * MiB,
        window=max(args.window_mib, 2 * args.pack_mib + 64) * MiB,
    )
    code = engine.run()
    # Everything is said (and the cache saved): exit now. On failure, do not wait for uploads
    # or chunking still running; on success, do not let Python 3.8's exit hook join chunking
    # processes that a pool shut down without waiting never stops (the session would hang).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
