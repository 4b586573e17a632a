"""Content-defined chunking at C speed with the standard library only.

Each byte is mapped to one of three pseudo-random symbols (`bytearray.translate`, a C loop) and
a chunk ends where the last 11 symbols spell a fixed pattern (`bytes.find`, C again): a cut
depends only on the 11 bytes before it. A match has odds 3^-11 (about 1 in 177 KiB) per byte;
the search starts MIN_CHUNK after the last cut, so chunks average ~560 KiB and about a third of
the data is searched. That third is what brings an edited file back onto its old chunks: after
an edit the new chain of cuts meets the old one only where no match lies in the gap between
them, which happens at a chunk's end with odds of about the share searched. A third meets within
a chunk or three (~1 MiB re-uploaded past an edit); a tenth searched (the chunker before) cost
~4 MiB per edit on average and sometimes 20.

Structured text can miss that pattern for good: in a CSV of numbers a comma or a dot comes every
few bytes, and if its symbol is not in the pattern no 11 bytes in a row ever spell it (every cut
would be a MAX_CHUNK one, which an insertion shifts to the end of the file). So when the pattern
has no match within PROBE of where the search starts, the chunk is cut by a second rule that any
data with entropy satisfies at the same rate: symbols of the sum of a pseudo-random 4-bit value
over the last 17 bytes (whatever the layout, 17 bytes of numbers carry plenty of entropy; the
17-byte sums of a whole step are computed at once with Python's big integers, lanes of one byte).
It is ~5x slower, so it only runs where the first rule failed; ordinary data nearly always
matches within PROBE and is cut exactly as before. Low-entropy data (zeros, one repeated byte)
matches neither and is cut at MAX_CHUNK, as FastCDC does. Tables, patterns and sizes are part of
the storage format: changing them costs deduplication against older snapshots (never
correctness), and only for files that changed since (the stat cache keeps an unchanged file's
chunk list).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterator, NamedTuple, Protocol


class Readable(Protocol):
    def readinto(self, buffer: Any) -> int | None: ...


MIN_CHUNK = 384 * 1024
MAX_CHUNK = 4 * 1024 * 1024
READ_SIZE = 16 * 1024 * 1024

_SYMBOLS = 3


def _ranks(tag: bytes) -> list[int]:
    """Each byte value's place in a fixed pseudo-random order."""
    order = sorted(range(256), key=lambda i: hashlib.sha256(tag + bytes([i])).digest())
    ranks = [0] * 256
    for place, value in enumerate(order):
        ranks[value] = place
    return ranks


# Each symbol stands for 85 or 86 byte values.
_TABLE = bytes(rank % _SYMBOLS for rank in _ranks(b"dumont-cdc-2"))
# Neither constant nor containing zero's symbol: runs of one byte never match.
_PATTERN = bytes([2, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2])
assert _TABLE[0] == 0

# Where the first rule found nothing this far past MIN_CHUNK, the second one cuts. Ordinary data
# matches within 1 MiB but for e^(-1024/177), 0.3 % of chunks.
PROBE = 1024 * 1024
# The second rule: a 4-bit value per byte, summed over _WINDOW bytes (17 x 15 fits a one-byte
# lane; an odd window keeps a layout that repeats every 2, 4 or 8 bytes from cancelling out).
_WINDOW = 17
_NIBBLE = bytes(rank % 16 for rank in _ranks(b"dumont-cdc-3"))
_SUM_TABLE = bytes(rank % _SYMBOLS for rank in _ranks(b"dumont-cdc-3s"))


def _plain_symbols(data: bytearray) -> bytearray:
    """A symbol per byte; symbol i stands for byte i. bytearray.translate is the fast one
    (bytes' tracks whether anything changed, byte by byte)."""
    return data.translate(_TABLE)


def _window_symbols(data: bytearray) -> bytes:
    """A symbol per full window; symbol i stands for bytes i .. i + _WINDOW - 1."""
    lanes = int.from_bytes(data.translate(_NIBBLE), "little")
    sums = lanes + (lanes << 8)  # lane i: the values of bytes i-1 and i, added
    sums += sums << 16
    sums += sums << 32
    sums += sums << 64  # 16 bytes
    sums += lanes << 128  # 17
    # The newest byte's value into each lane's high half: consecutive symbols then differ even
    # where the byte leaving the window weighs what the one entering does (in a regular layout).
    sums ^= lanes << 4
    size = len(data)
    return sums.to_bytes(size + _WINDOW, "little")[_WINDOW - 1 : size].translate(_SUM_TABLE)


class _Rule(NamedTuple):
    symbols: Callable[[bytearray], bytes | bytearray]
    reach: int  # bytes a symbol stands for
    step: int  # bytes searched at a time


# Most cuts come within the first step, so little is translated in vain; big-integer arithmetic
# runs fastest on slices that stay in the CPU's cache.
_PLAIN = _Rule(_plain_symbols, 1, 64 * 1024)
_WINDOWED = _Rule(_window_symbols, _WINDOW, 8 * 1024)


def _find(rule: _Rule, buffer: bytearray, first: int, limit: int) -> int | None:
    """The end of the first pattern whose end lies in [first, limit], or None."""
    behind = rule.reach - 1 + len(_PATTERN)  # bytes before a cut its symbols stand for
    position = first - behind
    while position + behind <= limit:
        end = min(position + rule.step, limit)
        found = rule.symbols(buffer[position:end]).find(_PATTERN)
        if found >= 0:
            return position + found + behind
        position = end - behind + 1
    return None


def _cut(buffer: bytearray, start: int, limit: int, at_eof: bool) -> int:
    """Where the chunk that begins at `start` ends; `limit` is start + MAX_CHUNK, or the end of
    the file when that comes first (then at_eof)."""
    first = start + MIN_CHUNK + 1
    cut = _find(_PLAIN, buffer, first, min(first + PROBE, limit))
    if cut is None:
        cut = _find(_WINDOWED, buffer, first, limit)
    if cut is not None:
        return cut
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
