"""The chunking jobs of `create`, run in worker processes: chunk, hash and compress files into
a region of the shared memory arena. The arena, the chunks the last snapshot had and the
compressor are set here by `share` in the main process before the workers fork, so that every
worker sees them without a copy."""

from __future__ import annotations

import hashlib
import mmap
import os
import signal
from typing import List, Optional, Tuple

from agent.snapshot import chunker
from agent.snapshot.codec import Compressor

REGION = 16 * 1024 * 1024

# (hash, raw size, codec or None when not compressed, offset in the region, payload length)
Found = Tuple[str, int, Optional[str], int, int]
# (path, offset to start at, expected size)
Item = Tuple[str, int, int]
# per item: the chunks found, and the offset to go on from (None: the file is done)
JobResult = List[Tuple[List[Found], Optional[int]]]


# Set in the main process before the workers fork, so they share them.
_arena: mmap.mmap | None = None
_known: frozenset = frozenset()
_compressor: Compressor | None = None


def share(arena: mmap.mmap, known: frozenset, compressor: Compressor) -> None:
    global _arena, _known, _compressor
    _arena, _known, _compressor = arena, known, compressor


def run_job(items: list[Item], region: int) -> JobResult:
    """Chunk, hash and compress files into one region of the arena; runs in a worker process
    (or inline without one). Stops early when the region is nearly full: the items not finished
    say where to go on from."""
    assert _arena is not None and _compressor is not None
    base = region * REGION
    used = 0
    results: JobResult = []
    for path, start, expected in items:
        if used > REGION - chunker.MAX_CHUNK:
            results.append(([], start))
            continue
        found: list[Found] = []
        offset = start
        with open(path, "rb", buffering=0) as handle:
            if start:
                handle.seek(start)
            for view in chunker.views(handle, expected - start):
                digest = hashlib.sha256(view).hexdigest()
                if digest in _known:
                    found.append((digest, len(view), None, 0, 0))
                else:
                    codec, payload = _compressor.compress(view)
                    _arena[base + used : base + used + len(payload)] = payload
                    found.append((digest, len(view), codec, used, len(payload)))
                    used += len(payload)
                offset += len(view)
                if used > REGION - chunker.MAX_CHUNK:
                    break  # every later chunk begins at a cut: go on from there
            else:
                offset = -1
        results.append((found, None if offset < 0 else offset))
    return results


def ready() -> int:
    return os.getpid()


def worker_init() -> None:
    """A chunking process holds none of the session's pipes (so the control plane sees the
    engine end when its main process does) and dies with its parent."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipes are closed all the same
        pass
