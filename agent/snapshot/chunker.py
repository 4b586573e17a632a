"""Content-defined chunking at C speed with the standard library only.

Each byte is mapped to one pseudo-random bit (`bytes.translate`, a C loop) and a chunk ends
where the last 19 bits equal a fixed balanced pattern (`bytes.find`, C again): a cut depends
only on the 19 bytes before it, so inserting or deleting bytes moves the cuts near the edit and
no others, and unchanged regions keep their chunks (and their hashes). A pattern match has odds
2^-19 per byte on high-entropy data: cuts come ~512 KiB after MIN_CHUNK, where the search
starts (so only about half of the data is ever searched), and chunks average ~1 MiB.
Low-entropy data (zeros, one repeated byte) never matches and is cut at MAX_CHUNK, as FastCDC
does. The table, pattern and sizes are part of the storage format:
changing them costs deduplication against older snapshots (never correctness).
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Iterator

MIN_CHUNK = 512 * 1024
MAX_CHUNK = 4 * 1024 * 1024
READ_SIZE = 16 * 1024 * 1024
# The search for a cut runs over this much at a time: most cuts come within the first step,
# so little is translated in vain.
_STEP = 256 * 1024

_TABLE = bytes(hashlib.sha256(b"dumont-cdc-table" + bytes([i])).digest()[0] & 1 for i in range(256))
_PATTERN = bytes([1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1])


def _cut(buffer: bytes, start: int, at_eof: bool) -> int:
    """Where the chunk that begins at `start` ends (the buffer holds MAX_CHUNK bytes from
    `start`, or the rest of the file)."""
    limit = min(start + MAX_CHUNK, len(buffer))
    overlap = len(_PATTERN) - 1
    position = start + MIN_CHUNK - overlap
    while position < limit - overlap:
        end = min(position + _STEP, limit)
        found = buffer[position:end].translate(_TABLE).find(_PATTERN)
        if found >= 0:
            return position + found + len(_PATTERN)
        position = end - overlap
    if limit == start + MAX_CHUNK or at_eof:
        return limit
    raise AssertionError("a cut needs MAX_CHUNK bytes or the end of the file")


def chunks(handle: BinaryIO, first: bytes = b"") -> Iterator[bytes]:
    """The chunks of a file, in order. `first` is data already read from the handle."""
    buffer = first
    at_eof = False
    while True:
        while not at_eof and len(buffer) < MAX_CHUNK:
            data = handle.read(READ_SIZE)
            if data:
                buffer = buffer + data if buffer else data
            else:
                at_eof = True
        if not buffer:
            return
        if len(buffer) <= MIN_CHUNK:
            yield buffer
            return
        start = 0
        # Cut while a full search window is in the buffer (or the file ends in it).
        while start < len(buffer) and (at_eof or len(buffer) - start >= MAX_CHUNK):
            if len(buffer) - start <= MIN_CHUNK:
                end = len(buffer)
            else:
                end = _cut(buffer, start, at_eof)
            yield buffer[start:end]
            start = end
        buffer = buffer[start:]
        if at_eof and not buffer:
            return
