"""The chunk index on both databases: what a snapshot records is what the next one finds."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from core.db import session_scope
from core.models import User
from core.snapshots import index
from core.snapshots.index import ChunkLocation
from core.snapshots.store import ObjectStore


def test_uploaded_chunks_are_found_and_the_first_copy_wins(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add_all([User(id="alice", name="alice"), User(id="bob", name="bob")])
    index.begin_snapshot(engine, "s1", "alice", "m1")
    first = index.register_pack(engine, "alice", "s1", 300, 3)
    second = index.register_pack(engine, "alice", "s1", 100, 1)
    hashes = [f"{n:064x}" for n in range(3)]
    index.pack_uploaded(
        engine,
        "alice",
        first.id,
        [(h, ChunkLocation(first.id, 100 * n, 100, 150, "zstd")) for n, h in enumerate(hashes)],
    )
    # The same chunk packed again (another machine of hers, meanwhile): the first one stays.
    index.pack_uploaded(
        engine, "alice", second.id, [(hashes[1], ChunkLocation(second.id, 0, 100, 150, "raw"))]
    )
    found = index.present_chunks(engine, "alice", [*hashes, "f" * 64])
    assert found == {
        h: ChunkLocation(first.id, 100 * n, 100, 150, "zstd") for n, h in enumerate(hashes)
    }
    assert index.present_chunks(engine, "bob", hashes) == {}
    # A registered pack that never reported its upload vouches for nothing.
    index.register_pack(engine, "alice", "s1", 100, 1)
    assert index.present_chunks(engine, "alice", ["e" * 64]) == {}


def test_the_store_tells_an_objects_size_or_that_there_is_none(store: ObjectStore) -> None:
    store.put("packs/x/full", b"hello")
    store.put("packs/x/empty", b"")
    assert store.size("packs/x/full") == 5
    assert store.size("packs/x/empty") == 0
    assert store.size("packs/x/missing") is None
