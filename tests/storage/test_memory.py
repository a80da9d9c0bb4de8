"""MemoryStore: per-key expiry on an injected clock, byte bound, stats."""

from __future__ import annotations

import tracemalloc

import pytest
from .factories import make_entry, make_vary_index

from edgeproxy.cache.entry import CacheEntry, pack_fields
from tests.support.keys import key_for
from edgeproxy.storage.memory import VARY_INDEX_SIZE, MemoryStore, object_size


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_an_object_lives_exactly_its_ttl() -> None:
    clock = Clock()
    store = MemoryStore(1 << 20, clock=clock)
    entry = make_entry()
    await store.put(b"k", entry, ttl=30)
    clock.now += 29.9
    assert await store.get(b"k") is entry
    clock.now += 0.1
    assert await store.get(b"k") is None
    assert store.stats()["expired"] == 1
    assert len(store) == 0


def test_zero_or_negative_ttl_removes_the_older_copy() -> None:
    store = MemoryStore(1 << 20, clock=Clock())
    store.put_nowait(b"k", make_entry(), 30)
    store.put_nowait(b"k", make_entry(), 0)
    assert store.get_nowait(b"k") is None


def test_entries_are_charged_at_least_their_payload_and_vary_index_a_small_fixed_size() -> None:
    store = MemoryStore(1 << 20, clock=Clock())
    entry, index = make_entry(body=b"x" * 5000), make_vary_index()
    store.put_nowait(b"e", entry, 10)
    store.put_nowait(b"v", index, 10)
    assert object_size(entry) >= entry.size
    assert store.stats()["bytes"] == object_size(entry) + VARY_INDEX_SIZE + len(index.key)


def fresh_entry(i: int, body_size: int, header_count: int) -> CacheEntry:
    """Every string distinct, as for responses parsed off the wire."""
    return CacheEntry(
        key=key_for(f"example.test/items/{i}"), status=200,
        fields=pack_fields(tuple((f"x-name-{j}", f"value-{i}-{j}") for j in range(header_count))),
        body=bytes(body_size), request_time=1.0 + i, response_time=2.0 + i, fresh_for=60.0 + i,
        stored_at=3.0 + i, tags=frozenset({f"item:{i}"}) if header_count else frozenset(),
    )


@pytest.mark.parametrize(("body_size", "header_count"), [(0, 0), (300, 6), (5000, 12)])
def test_real_memory_stays_within_5_percent_of_the_budget(body_size: int, header_count: int) -> None:
    capacity = 2_000_000
    tracemalloc.start()
    try:
        store = MemoryStore(capacity)
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3 * capacity // (body_size + 1000)):
            store.put_nowait(i.to_bytes(16, "big"), fresh_entry(i, body_size, header_count), 60)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert store.stats()["evictions"] > 0
    assert used <= capacity * 1.05


def test_byte_bound_holds_and_evictions_are_counted() -> None:
    capacity = 200_000
    store = MemoryStore(capacity, clock=Clock())
    for i in range(500):
        store.put_nowait(i.to_bytes(4, "big"), make_entry(body=b"x" * (1000 + i * 7)), 60)
        assert store.stats()["bytes"] <= capacity
    stats = store.stats()
    assert stats["capacity"] == capacity
    assert stats["evictions"] > 0
    assert stats["objects"] == len(store) > 0


async def test_put_many_delete_and_clear() -> None:
    store = MemoryStore(1 << 20, clock=Clock())
    await store.put_many([(b"a", make_entry(), 10), (b"b", make_entry(), 10)])
    await store.delete(b"a")
    assert await store.get(b"a") is None
    await store.clear()
    assert store.stats()["objects"] == 0 and store.stats()["bytes"] == 0
