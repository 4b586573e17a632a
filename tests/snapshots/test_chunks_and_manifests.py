"""The chunker's cuts follow content, and the control plane refuses a tree that does not hold."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Callable

import pytest

from agent.snapshot.chunker import MAX_CHUNK, MIN_CHUNK, chunks
from agent.snapshot.tree import TreeEntry, content_digest, root_hash
from core.snapshots.manifest import ManifestError, check_tree


def digests(data: bytes) -> list[str]:
    return [hashlib.sha256(c).hexdigest() for c in chunks(io.BytesIO(data))]


def new_bytes(data: bytes, known: set[str]) -> int:
    """What a snapshot of `data` uploads when the store holds the `known` chunks."""
    return sum(
        len(c) for c in chunks(io.BytesIO(data)) if hashlib.sha256(c).hexdigest() not in known
    )


def test_chunks_reassemble_and_respect_their_bounds() -> None:
    rng = random.Random(1)
    for size in (0, 1, MIN_CHUNK, MIN_CHUNK + 1, MAX_CHUNK + 1, 40 * 1024 * 1024 + 7):
        data = rng.randbytes(size)
        pieces = list(chunks(io.BytesIO(data)))
        assert b"".join(pieces) == data
        assert all(len(p) <= MAX_CHUNK for p in pieces)
        assert all(len(p) >= MIN_CHUNK for p in pieces[:-1])
    zeros = list(chunks(io.BytesIO(bytes(9 * 1024 * 1024))))
    assert [len(p) for p in zeros] == [MAX_CHUNK, MAX_CHUNK, 1024 * 1024]


def test_an_insert_changes_only_the_chunks_around_it() -> None:
    data = random.Random(2).randbytes(48 * 1024 * 1024)
    before = digests(data)
    edited = data[: 20 * 1024 * 1024] + b"a few new bytes" + data[20 * 1024 * 1024 :]
    after = digests(edited)
    assert len(before) > 20  # ~1 MiB chunks on random data
    assert len(set(after) - set(before)) <= 2
    assert len(set(before) - set(after)) <= 2


def test_an_in_place_rewrite_re_uploads_little_more_than_itself() -> None:
    """A rewrite moves the cuts after it; they must fall back onto the old ones soon, or every
    snapshot after a small edit uploads megabytes that did not change."""
    mib = 1024 * 1024
    data = random.Random(3).randbytes(24 * mib)
    known = set(digests(data))
    extras = []
    for seed in range(32):
        rng = random.Random(100 + seed)
        at = rng.randrange(4 * mib, 14 * mib)
        edited = data[:at] + rng.randbytes(mib) + data[at + mib :]
        extras.append((new_bytes(edited, known) - mib) / mib)
    assert sum(extras) / len(extras) <= 1.5  # MiB beyond the rewrite, on average
    assert max(extras) <= 8.0


def numbers_csv(rng: random.Random, size: int) -> bytes:
    pool = [",".join(f"{rng.gauss(0, 1):.5f}" for _ in range(8)).encode() for _ in range(4000)]
    return b"\n".join(rng.choices(pool, k=size // 70))[:size]


def numbers_json(rng: random.Random, size: int) -> bytes:
    pool = [str(round(rng.gauss(0, 1), 4)) for _ in range(4000)]
    return ("[" + ", ".join(rng.choices(pool, k=size // 8)) + "]").encode()[:size]


@pytest.mark.parametrize("make", [numbers_csv, numbers_json], ids=["csv", "json"])
def test_an_insert_into_a_file_of_numbers_re_uploads_little(
    make: Callable[[random.Random, int], bytes],
) -> None:
    """A comma or a dot every few bytes never lets 11 bytes in a row spell the first rule's
    pattern; without the second rule every cut was a MAX_CHUNK one, and a line inserted near
    the start re-uploaded the rest of the file."""
    mib = 1024 * 1024
    data = make(random.Random(4), 16 * mib)
    assert sum(len(p) == MAX_CHUNK for p in chunks(io.BytesIO(data))) <= 1
    known = set(digests(data))
    extras = []
    for seed in range(6):
        at = random.Random(seed).randrange(2 * mib, 10 * mib)
        edited = data[:at] + b"0.12345,1.5\n" + data[at:]
        extras.append(new_bytes(edited, known) / mib)
    assert sum(extras) / len(extras) <= 1.5  # MiB re-uploaded per insert, on average
    assert max(extras) <= 4.0


def entry(path: str, kind: str = "d", **more: object) -> dict[str, object]:
    return {"p": path, "k": kind, "m": 0o755, **more}


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([entry("a")], "no root"),
        ([entry("."), entry("a"), entry("a")], "twice"),
        ([entry("."), entry("a/b")], "parent"),
        ([entry("."), entry("../x")], "clean relative"),
        ([entry("."), entry("f", "f", s=5, c=["00" * 32])], "in no pack"),
        ([entry("."), entry("f", "f", s=5, c=["11" * 32])], "add up"),
        ([entry("."), entry("l", "l", l="x"), entry("l/x", "f", s=0, c=[])], "parent"),
    ],
)
def test_a_tree_that_does_not_hold_is_refused(entries, problem) -> None:
    with pytest.raises(ManifestError, match=problem):
        check_tree(entries, {"11" * 32: 4})


def test_the_root_hash_sees_content_modes_and_links_but_not_order() -> None:
    base = [
        TreeEntry(".", "d", 0o755, 0, ""),
        TreeEntry("f", "f", 0o644, 3, content_digest(["aa" * 32])),
        TreeEntry("l", "l", 0, 0, "f"),
    ]
    assert root_hash(base) == root_hash(list(reversed(base)))
    for changed in (
        TreeEntry("f", "f", 0o600, 3, content_digest(["aa" * 32])),
        TreeEntry("f", "f", 0o644, 3, content_digest(["bb" * 32])),
    ):
        assert root_hash([base[0], changed, base[2]]) != root_hash(base)
    assert root_hash([*base[:2], TreeEntry("l", "l", 0, 0, "g")]) != root_hash(base)
