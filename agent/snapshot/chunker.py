"""Content-defined chunking at C speed with the standard library only.

Each byte is mapped to one of three pseudo-random symbols (`bytearray.translate`, a C loop) and
a chunk ends where the last 11 symbols spell a fixed pattern (`bytes.find`, C again): a cut
depends only on the 11 bytes before it. A match has odds 3^-11 (about 1 in 177 KiB) per byte;
the search starts MIN_CHUNK after the last cut, so chunks average ~560 KiB and about a third of
the data is searched. That third is what brings an edited file back onto its old chunks: after
an edit the new chain of cuts meets the old one only where no match lies in the gap between
them, which happens at a chunk's end with odds of about the share searched. A third meets within
a chunk or three (~1 MiB re-uploaded past an edit); a tenth searched (the chunker before) cost
~4 MiB per edit on average and sometimes 20. Three symbols, each ~85 byte values: text, code and
binary data alike hit the pattern at about the nominal rate (a wider alphabet makes `find`
faster but lets repetitive text miss the pattern altogether, and then every cut is a MAX_CHUNK
one, which an insertion shifts). Low-entropy data (zeros, one repeated byte) never matches and
is cut at MAX_CHUNK, as FastCDC does. The table, pattern and sizes are part of the storage
format: changing them costs deduplication against older snapshots (never correctness), and only
for files that changed since (the stat cache keeps an unchanged file's chunk list).
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator, Protocol


class Readable(Protocol):
    def readinto(self, buffer: Any) -> int | None: ...


MIN_CHUNK = 384 * 1024
MAX_CHUNK = 4 * 1024 * 1024
READ_SIZE = 16 * 1024 * 1024
# The search for a cut runs over this much at a time: most cuts come within the first steps,
# so little is translated in vain.
_STEP = 64 * 1024

_SYMBOLS = 3
# Each symbol stands for 85 or 86 byte values, picked by a fixed pseudo-random order.
_ORDER = sorted(range(256), key=lambda i: hashlib.sha256(b"dumont-cdc-2" + bytes([i])).digest())
_TABLE = bytes(_ORDER.index(i) % _SYMBOLS for i in range(256))
# Neither constant nor containing zero's symbol: runs of one byte never match.
_PATTERN = bytes([2, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2])
assert _TABLE[0] == 0


def _cut(buffer: bytearray, start: int, limit: int, at_eof: bool) -> int:
    """Where the chunk that begins at `start` ends; `limit` is start + MAX_CHUNK, or the end of
    the file when that comes first (then at_eof). bytearray.translate is the fast one (bytes'
    tracks whether anything changed, byte by byte)."""
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


def views(handle: Readable, expected: int = READ_SIZE) -> Iterator[memoryview]:
    """The chunks of a file, in order, as views into one reused buffer: each is valid only until
    the next is asked for (hash or compress it, or copy it, before). No copies are made.
    `expected`: the file's size, if known, so a small file gets a small buffer."""
    capacity = min(READ_SIZE + MAX_CHUNK, max(expected, 0) + 1)
    buffer = bytearray(capacity)
    view = memoryview(buffer)
    start = end = 0
    at_eof = False
    while True:
        if not at_eof and end - start < MAX_CHUNK:
            if start:  # keep the unfinished tail, at the front
                view[: end - start] = view[start:end]
                end -= start
                start = 0
            if end == capacity:  # larger than expected: a full-size buffer
                capacity = READ_SIZE + MAX_CHUNK
                grown = bytearray(capacity)
                grown[:end] = view[:end]
                buffer, view = grown, memoryview(grown)
            while end < capacity:
                got = handle.readinto(view[end:])
                if not got:
                    at_eof = True
                    break
                end += got
        if start == end:
            return
        # Cut while a full search window is in the buffer (or the file ends in it).
        while start < end and (at_eof or end - start >= MAX_CHUNK):
            if end - start <= MIN_CHUNK:
                cut = end
            else:
                cut = _cut(buffer, start, min(start + MAX_CHUNK, end), at_eof)
            yield view[start:cut]
            start = cut
        if at_eof and start == end:
            return


def chunks(handle: Readable, expected: int = READ_SIZE) -> Iterator[bytes]:
    """The chunks of a file, in order, each its own bytes."""
    for piece in views(handle, expected):
        yield bytes(piece)
